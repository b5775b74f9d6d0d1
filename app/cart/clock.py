"""The cart detector's clock: event time held back by the allowed lateness.

Deadlines fire on this clock, not on arrival: a timer fires once the stream has shown an event
`lateness` past it, so an event that is up to `lateness` late still lands before the timer it
could have prevented. Live workers also let the wall clock push it, so a quiet stream still fires
its carts; replay passes no wall time, which keeps it a function of the input alone.
"""

from __future__ import annotations

# Before any event, the clock stands before every possible deadline (timeutil accepts 1970..2200).
NEVER_MS = -(2**62)


class EventClock:
    """Highest cart-event ts seen (per partition in a live worker), minus the lateness."""

    __slots__ = ("_highest", "lateness_ms")

    def __init__(self, lateness_ms: int) -> None:
        self.lateness_ms = lateness_ms
        self._highest: int | None = None

    @property
    def highest_ms(self) -> int | None:
        """The highest event ts observed, or None before the first event."""
        return self._highest

    def observe(self, ts: int) -> None:
        """Account for an event's ts; a late event never moves the clock back."""
        if self._highest is None or ts > self._highest:
            self._highest = ts

    def now(self, wall_ms: int | None = None) -> int:
        """The clock: max(highest ts seen, wall time if given) minus the lateness.

        Returns `NEVER_MS` when there is neither an event nor a wall time yet, so nothing fires.
        """
        top = self._highest
        if wall_ms is not None and (top is None or wall_ms > top):
            top = wall_ms
        return NEVER_MS if top is None else top - self.lateness_ms
