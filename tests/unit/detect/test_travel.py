from __future__ import annotations

from collections.abc import Callable

import pytest

from app.contract.events import Transaction
from app.detect.config import FraudConfig
from app.detect.state import CardState
from app.detect.travel import check_impossible_travel, haversine_km, travel_fires
from tests.unit.detect.helpers import HOUR, KM_PER_DEG_EQUATOR, T0, S, state_of

MakeTxn = Callable[..., Transaction]


def at_km(make_txn: MakeTxn, km: float, ts: int) -> Transaction:
    """A transaction on the equator, `km` east of (0, 0)."""
    return make_txn(lat=0.0, lon=km / KM_PER_DEG_EQUATOR, ts=ts)


def test_haversine_known_distances() -> None:
    assert haversine_km(0, 0, 0, 1) == pytest.approx(KM_PER_DEG_EQUATOR)
    assert haversine_km(48.857, 2.352, 51.507, -0.128) == pytest.approx(343.5, abs=1.0)
    assert haversine_km(10, 20, 10, 20) == 0.0
    assert haversine_km(0, 0, 0, 180) == pytest.approx(6371.0 * 3.141592653589793)


@pytest.mark.parametrize(
    ("km", "gap_ms", "fires"),
    [
        (100.0, 0, True),  # >= 100 km
        (99.999, 0, False),
        (1000.0, HOUR, False),  # exactly 1000 km/h does not exceed it
        (1000.0, HOUR - 1, True),
        (100.0, 6 * 60 * S, False),  # 1000 km/h exactly
        (100.0, 6 * 60 * S - 1, True),
    ],
)
def test_decision_boundaries(km: float, gap_ms: int, fires: bool, config: FraudConfig) -> None:
    assert travel_fires(km, gap_ms, config) is fires


def test_fires_with_reason(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([at_km(make_txn, 0.0, T0)])
    hit = check_impossible_travel(at_km(make_txn, 1234.0, T0 + HOUR // 2), prior, config)
    assert hit is not None
    assert (hit.rule, hit.threshold) == ("impossible_travel", 1000.0)
    assert hit.value == pytest.approx(2468.0, abs=0.1)
    assert hit.reason == (
        "1234 km from the previous transaction in 0.50 h (2468 km/h, alert above 1000 km/h)"
    )


def test_same_time_is_infinite_speed(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([at_km(make_txn, 0.0, T0)])
    hit = check_impossible_travel(at_km(make_txn, 500.0, T0), prior, config)
    assert hit is not None and hit.value is None
    assert hit.reason == (
        "500 km from the previous transaction at the same time (alert above 1000 km/h)"
    )


def test_short_gap_is_worded_in_seconds(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([at_km(make_txn, 0.0, T0)])
    hit = check_impossible_travel(at_km(make_txn, 200.0, T0 + 10 * S), prior, config)
    assert hit is not None and "in 10 s (72000 km/h" in hit.reason


def test_distance_boundary_through_coordinates(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([at_km(make_txn, 0.0, T0)])
    assert check_impossible_travel(at_km(make_txn, 99.99, T0 + S), prior, config) is None
    assert check_impossible_travel(at_km(make_txn, 100.01, T0 + S), prior, config) is not None


def test_speed_boundary_through_coordinates(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([at_km(make_txn, 0.0, T0)])
    assert check_impossible_travel(at_km(make_txn, 990.0, T0 + HOUR), prior, config) is None
    assert check_impossible_travel(at_km(make_txn, 1010.0, T0 + HOUR), prior, config) is not None


def test_earlier_event_time_uses_absolute_gap(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([at_km(make_txn, 0.0, T0 + HOUR)])
    hit = check_impossible_travel(at_km(make_txn, 2000.0, T0), prior, config)
    assert hit is not None and hit.value == pytest.approx(2000.0, abs=0.1)


def test_needs_both_locations(make_txn: MakeTxn, config: FraudConfig) -> None:
    assert check_impossible_travel(at_km(make_txn, 900.0, T0), CardState(), config) is None
    prior = state_of([at_km(make_txn, 0.0, T0)])
    assert check_impossible_travel(make_txn(ts=T0 + S), prior, config) is None
    assert check_impossible_travel(make_txn(lat=10.0, ts=T0 + S), prior, config) is None


def test_prior_means_last_processed_even_without_location(
    make_txn: MakeTxn, config: FraudConfig
) -> None:
    # The last processed transaction had no location: nothing to compare with.
    prior = state_of([at_km(make_txn, 0.0, T0), make_txn(ts=T0 + S)])
    assert check_impossible_travel(at_km(make_txn, 900.0, T0 + 2 * S), prior, config) is None


def test_prior_means_arrival_order_not_event_time(make_txn: MakeTxn, config: FraudConfig) -> None:
    # Arrived last (though earliest in event time) at km 900: the next is compared with it.
    prior = state_of([at_km(make_txn, 0.0, T0 + HOUR), at_km(make_txn, 900.0, T0)])
    assert prior.last_location is not None and prior.last_location[2] == T0
    hit = check_impossible_travel(at_km(make_txn, 0.0, T0 + HOUR), prior, config)
    assert hit is None  # 900 km in 1 h
    hit = check_impossible_travel(at_km(make_txn, 0.0, T0 + HOUR // 2), prior, config)
    assert hit is not None  # 900 km in 0.5 h
