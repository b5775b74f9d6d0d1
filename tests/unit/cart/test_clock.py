"""`EventClock`: highest ts seen minus the lateness; wall time pushes it only when given."""

from __future__ import annotations

from app.cart.clock import NEVER_MS, EventClock


def test_clock_before_any_event_fires_nothing() -> None:
    clock = EventClock(10_000)
    assert clock.highest_ms is None
    assert clock.now() == NEVER_MS


def test_clock_is_highest_ts_minus_lateness_and_never_goes_back() -> None:
    clock = EventClock(10_000)
    clock.observe(100_000)
    clock.observe(50_000)  # late event
    assert clock.highest_ms == 100_000
    assert clock.now() == 90_000


def test_wall_time_pushes_the_clock_only_forward() -> None:
    clock = EventClock(10_000)
    assert clock.now(wall_ms=500_000) == 490_000
    clock.observe(100_000)
    assert clock.now(wall_ms=500_000) == 490_000
    assert clock.now(wall_ms=20_000) == 90_000
    assert clock.highest_ms == 100_000  # wall time is not remembered as an event
