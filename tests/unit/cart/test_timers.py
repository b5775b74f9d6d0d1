"""`TimerIndex`: due timers in (deadline, user) order, lazy deletion, cost of O(due)."""

from __future__ import annotations

from app.cart.timers import TimerIndex


def test_due_returns_current_timers_in_deadline_then_user_order() -> None:
    timers = TimerIndex()
    timers.schedule("b", 10)
    timers.schedule("a", 10)
    timers.schedule("c", 5)
    timers.schedule("d", 11)
    assert timers.due(10) == ["c", "a", "b"]
    assert len(timers) == 1 and timers.get("d") == 11
    assert timers.due(10) == []


def test_rescheduled_and_cancelled_timers_do_not_fire_at_their_old_deadline() -> None:
    timers = TimerIndex()
    timers.schedule("a", 10)
    timers.schedule("a", 20)  # moved later: the entry at 10 is stale
    timers.schedule("b", 10)
    timers.schedule("b", None)  # cancelled
    timers.schedule("c", 30)
    timers.schedule("c", 5)  # moved earlier
    assert len(timers) == 2
    assert timers.due(15) == ["c"]
    assert timers.due(25) == ["a"]
    assert len(timers) == 0


def test_rescheduling_to_the_same_deadline_fires_once() -> None:
    timers = TimerIndex()
    timers.schedule("a", 10)
    timers.schedule("a", 20)
    timers.schedule("a", 10)
    assert timers.due(100) == ["a"]
    assert "a" not in timers


def test_next_ms_skips_stale_entries() -> None:
    timers = TimerIndex()
    assert timers.next_ms() is None
    timers.schedule("a", 10)
    timers.schedule("a", 30)
    timers.schedule("b", 20)
    assert timers.next_ms() == 20


def test_rebuild_replaces_everything() -> None:
    timers = TimerIndex()
    timers.schedule("old", 1)
    timers.rebuild([("x", 50), ("y", 40)])
    assert len(timers) == 2 and "old" not in timers
    assert timers.due(100) == ["y", "x"]


def test_due_touches_only_due_entries_among_100_000() -> None:
    timers = TimerIndex()
    timers.rebuild((f"u{i:06d}", 1_000_000 + i) for i in range(100_000))
    for i in range(10):
        timers.schedule(f"early{i}", 500 + i)
    before = timers.pops
    fired = timers.due(600)
    assert fired == [f"early{i}" for i in range(10)]
    assert timers.pops - before == 10
    assert len(timers) == 100_000


def test_stale_entries_cost_one_pop_each_and_the_heap_stays_bounded() -> None:
    timers = TimerIndex()
    for step in range(50_000):  # one user rescheduled on every event
        timers.schedule("busy", 1_000 + step)
    assert len(timers._heap) <= 4 + 1024 + 1
    before = timers.pops
    assert timers.due(10**9) == ["busy"]
    assert timers.pops - before <= 4 + 1024 + 1
