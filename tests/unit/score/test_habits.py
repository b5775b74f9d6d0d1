"""Card habits for risk scoring: daily buckets in CardState, bounded, and old layouts readable."""

from __future__ import annotations

import orjson

from app.contract.events import Transaction
from app.detect.config import FraudConfig
from app.detect.state import HABIT_DAYS, CardState
from tests.unit.detect.helpers import DAY, HOUR, T0

CONFIG = FraudConfig()


def txn(i: int, ts: int, amount: float) -> Transaction:
    return Transaction(f"t-{i}", "c-1", amount, "EUR", "m-1", ts)


def test_habits_sum_the_last_1_7_30_days() -> None:
    state = CardState()
    today = T0 // DAY
    # 2 today, 1 three days ago, 1 twenty days ago, 1 forty days ago (outside every window)
    for i, (ago, amount) in enumerate([(40, 1000.0), (20, 30.0), (3, 20.0), (0, 10.0), (0, 5.0)]):
        state.add(txn(i, T0 - ago * DAY, amount), CONFIG)
    n1, s1, n7, s7, n30, s30 = state.habits(today)
    assert (n1, s1) == (2, 15.0)
    assert (n7, s7) == (3, 35.0)
    assert (n30, s30) == (4, 65.0)
    assert state.last_ts == T0 - 0 * DAY  # the transaction processed last


def test_buckets_are_bounded_and_survive_bytes() -> None:
    state = CardState()
    for i in range(200):  # 100 days, two a day
        state.add(txn(i, T0 + i * 12 * HOUR, 1.0), CONFIG)
    again = CardState.from_bytes(state.to_bytes())
    assert again == state
    assert len(orjson.loads(state.to_bytes())[11]) == HABIT_DAYS  # day numbers held
    times = [T0 + i * 12 * HOUR for i in range(200)]
    last_day = times[-1] // DAY
    expected = sum(1 for t in times if last_day - 30 < t // DAY <= last_day)
    assert again.habits(last_day)[4:] == (expected, float(expected))


def test_a_layout_1_value_is_still_read() -> None:
    """State written before risk scoring (layout 1) reads as a card with no buckets yet."""
    old = orjson.dumps([1, T0, 3, 10.0, 2.0, None, [T0], [10.0], [T0], ["t-1"]])
    state = CardState.from_bytes(old)
    assert state.count == 3 and state.max_ts == T0
    assert state.last_ts == T0
    assert state.habits(T0 // DAY) == (0, 0.0, 0, 0.0, 0, 0.0)
    state.add(txn(9, T0 + HOUR, 7.0), CONFIG)
    assert state.habits(T0 // DAY)[:2] == (1, 7.0)  # counted on its own day
    assert CardState.from_bytes(state.to_bytes()).to_bytes().startswith(b"[2,")
