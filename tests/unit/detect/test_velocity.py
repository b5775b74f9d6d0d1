from __future__ import annotations

from collections.abc import Callable

from app.contract.events import Transaction
from app.detect.config import FraudConfig
from app.detect.state import CardState
from app.detect.velocity import check_velocity
from tests.unit.detect.helpers import MIN, T0, S, state_of

MakeTxn = Callable[..., Transaction]


def test_sixth_in_60_s_fires(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([make_txn(ts=T0 + i * S) for i in range(5)])
    hit = check_velocity(make_txn(ts=T0 + 10 * S), prior, config)
    assert hit is not None
    assert (hit.rule, hit.value, hit.threshold) == ("velocity", 6, 6)
    assert hit.reason == "6 transactions in 60 s (alert at 6)"


def test_fifth_does_not_fire(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([make_txn(ts=T0 + i * S) for i in range(4)])
    assert check_velocity(make_txn(ts=T0 + 10 * S), prior, config) is None


def test_first_transaction_never_fires(make_txn: MakeTxn, config: FraudConfig) -> None:
    assert check_velocity(make_txn(), CardState(), config) is None


def test_exactly_60_s_earlier_is_outside_the_window(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([make_txn(ts=T0)] + [make_txn(ts=T0 + 30 * S) for _ in range(4)])
    assert check_velocity(make_txn(ts=T0 + MIN), prior, config) is None
    hit = check_velocity(make_txn(ts=T0 + MIN - 1), prior, config)
    assert hit is not None and hit.value == 6


def test_later_event_times_are_not_in_the_window(make_txn: MakeTxn, config: FraudConfig) -> None:
    # Five transactions 1 ms after this one (they arrived first): (ts - 60 s, ts] excludes them.
    prior = state_of([make_txn(ts=T0 + 1) for _ in range(5)])
    assert check_velocity(make_txn(ts=T0), prior, config) is None
    hit = check_velocity(make_txn(ts=T0 + 1), prior, config)
    assert hit is not None


def test_same_ts_counts(make_txn: MakeTxn, config: FraudConfig) -> None:
    prior = state_of([make_txn(ts=T0) for _ in range(6)])
    hit = check_velocity(make_txn(ts=T0), prior, config)
    assert hit is not None
    assert hit.reason == "7 transactions in 60 s (alert at 6)"


def test_configured_window_is_worded(make_txn: MakeTxn) -> None:
    config = FraudConfig(velocity_count=2, velocity_window_ms=1500)
    prior = state_of([make_txn(ts=T0)], config)
    hit = check_velocity(make_txn(ts=T0 + 1), prior, config)
    assert hit is not None and hit.reason == "2 transactions in 1.5 s (alert at 2)"
