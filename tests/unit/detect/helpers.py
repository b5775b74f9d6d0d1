"""Plain builders shared by the detector tests (usable from hypothesis tests, unlike fixtures)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from app.contract.events import Transaction
from app.detect.config import FraudConfig
from app.detect.feedback import InMemoryPlaces
from app.detect.fraud import Detection, FraudDetector
from app.detect.state import CardState
from app.detect.terminal import PlaceLookup

T0 = 1_795_860_000_000  # 2026-11-28T10:00:00.000Z
S = 1_000
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR
KM_PER_DEG_EQUATOR = 6371.0 * 3.141592653589793 / 180.0  # along the equator


def txn_factory() -> Callable[..., Transaction]:
    """A `make_txn(**overrides)` with its own txn-id counter (t-1, t-2, ...)."""
    counter = itertools.count(1)

    def make_txn(**overrides: Any) -> Transaction:
        fields: dict[str, Any] = {
            "txn_id": f"t-{next(counter)}",
            "card_id": "c-1",
            "amount": 10.0,
            "currency": "EUR",
            "merchant_id": "m-1",
            "ts": T0,
        }
        fields.update(overrides)
        return Transaction(**fields)

    return make_txn


def state_of(txns: Iterable[Transaction], config: FraudConfig | None = None) -> CardState:
    """The card state after counting `txns` in order (no duplicate check)."""
    config = config or FraudConfig()
    state = CardState()
    for txn in txns:
        state.add(txn, config)
    return state


def run(
    detector: FraudDetector,
    txns: Iterable[Transaction],
    places: PlaceLookup | None = None,
    *,
    roundtrip: bool = False,
    state: CardState | None = None,
) -> list[Detection]:
    """Process `txns` on one card in order, threading the state (through bytes if asked)."""
    lookup = places if places is not None else InMemoryPlaces(detector.config)
    out = []
    for txn in txns:
        if roundtrip and state is not None:
            state = CardState.from_bytes(state.to_bytes())
        det = detector.process(txn, state, lookup, txn.ts + 5)
        state = det.state
        out.append(det)
    return out


def fired(det: Detection) -> list[str]:
    """Names of the rules in a detection's alert (empty when none)."""
    return [] if det.alert is None else [r["rule"] for r in det.alert["rules"]]
