"""Rule `impossible_travel`: the card is used too far from its previous use too soon after it.

Fires when this transaction and the card's prior one (the one processed last, arrival order) both
have lat/lon, are >= `travel_min_km` apart on a great circle (radius 6371 km), and the distance
over the absolute event-time gap exceeds `travel_max_kmh`; the same ts counts as infinite speed.
The minimum distance keeps GPS jitter and neighbouring cells from alerting at tiny time gaps.
"""

from __future__ import annotations

import math

from app.contract.events import Transaction
from app.detect.config import HOUR_MS, FraudConfig
from app.detect.hits import RuleHit, number
from app.detect.state import CardState

RULE = "impossible_travel"
EARTH_RADIUS_KM = 6371.0


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, a))))


def travel_fires(distance_km: float, gap_ms: int, config: FraudConfig) -> bool:
    """The rule's decision on a measured distance and absolute time gap.

    Compares distance x 1 h > max speed x gap instead of dividing, so the boundary (exactly the
    maximum speed does not fire) is exact and a zero gap needs no special case.
    """
    if distance_km < config.travel_min_km:
        return False
    return distance_km * HOUR_MS > config.travel_max_kmh * gap_ms


def _gap_text(gap_ms: int) -> str:
    if gap_ms < HOUR_MS // 100:  # under 0.01 h, hours would read "0.00 h"
        return f"{gap_ms / 1000:g} s"
    return f"{gap_ms / HOUR_MS:.2f} h"


def check_impossible_travel(
    txn: Transaction, state: CardState, config: FraudConfig
) -> RuleHit | None:
    """Evaluate the rule against the location `state` remembers from the prior transaction."""
    prev = state.last_location
    lat, lon = txn.lat, txn.lon
    if prev is None or lat is None or lon is None:
        return None
    prev_lat, prev_lon, prev_ts = prev
    distance = haversine_km(prev_lat, prev_lon, lat, lon)
    gap = abs(txn.ts - prev_ts)
    if not travel_fires(distance, gap, config):
        return None
    limit = number(config.travel_max_kmh)
    if gap == 0:
        return RuleHit(
            RULE,
            f"{distance:.0f} km from the previous transaction at the same time "
            f"(alert above {limit} km/h)",
            None,
            config.travel_max_kmh,
        )
    speed = distance * HOUR_MS / gap
    return RuleHit(
        RULE,
        f"{distance:.0f} km from the previous transaction in {_gap_text(gap)} "
        f"({speed:.0f} km/h, alert above {limit} km/h)",
        round(speed, 1),
        config.travel_max_kmh,
    )
