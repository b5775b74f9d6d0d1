"""The one definition of the order in which cart events and timers are processed.

For each event: the clock observes its ts; every timer the clock has reached fires (earliest
deadline first, ties by user_id); then the event is applied to its user (which abandons first if
the event is at or past that user's own deadline) and the user's timer is set again. At the end of
input the clock stands at the highest event ts seen and what is due fires. `vigil replay` and the
tests drive this class directly; the live agent drives it per partition with a table-backed store
and a wall clock, so both run exactly this sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from app.cart.clock import EventClock
from app.cart.config import CartConfig
from app.cart.machine import CartOutput, apply, check, fire
from app.cart.state import CartState
from app.cart.store import CartStore, DictCartStore
from app.cart.timers import TimerIndex
from app.contract.events import CartEvent


class CartEngine:
    """Drives `app.cart.machine` over a stream of cart events for many users.

    `wall_clock` (epoch ms) is for live workers only: it lets quiet streams fire (`tick`) and
    stamps `detected_ts` with the real detection time. Without it (replay, tests) the clock and
    `detected_ts` are event time, the highest ts seen, so the output depends on the input alone.
    """

    def __init__(
        self,
        cfg: CartConfig | None = None,
        store: CartStore | None = None,
        wall_clock: Callable[[], int] | None = None,
    ) -> None:
        self.cfg = cfg if cfg is not None else CartConfig()
        self.store: CartStore = store if store is not None else DictCartStore()
        self.clock = EventClock(self.cfg.lateness_ms)
        self.timers = TimerIndex()
        self._wall_clock = wall_clock

    @property
    def pending_timers(self) -> int:
        """Users with a timer pending (an abandonment deadline or a state-expiry check)."""
        return len(self.timers)

    def process(self, event: CartEvent) -> list[CartOutput]:
        """Process one cart event; return the outputs in the order they must be written.

        Raises `CartLimitError` (and changes nothing) for an `add_to_cart` past the quantity bound.
        """
        if event.type == "add_to_cart":
            check(self.store.get(event.user_id), event)
        self.clock.observe(event.ts)
        wall = self._wall()
        clock_ms = self.clock.now(wall)
        detected = self._detected(wall)
        outputs = self._fire_due(clock_ms, detected)
        user = event.user_id
        before = self.store.get(user)
        state, produced = apply(before, event, self.cfg, detected)
        outputs.extend(produced)
        self._put(user, state, clock_ms, stored=before is not None)
        # A late event can leave a deadline the clock has already passed: fire it now rather
        # than on the next event, so no timer <= clock is ever left pending between calls.
        outputs.extend(self._fire_due(clock_ms, detected))
        return outputs

    def tick(self) -> list[CartOutput]:
        """Fire whatever the clock (pushed by the wall clock, if any) has reached; no event."""
        wall = self._wall()
        return self._fire_due(self.clock.now(wall), self._detected(wall))

    def finish(self) -> list[CartOutput]:
        """End of input: the clock stands at the highest event ts seen; fire what is due.

        The lateness no longer holds the clock back because no later event can arrive.
        """
        highest = self.clock.highest_ms
        if highest is None:
            return []
        return self._fire_due(highest, highest)

    def restore(self, states: Iterable[tuple[str, CartState]]) -> None:
        """Rebuild the timers from stored states (after a restart or a partition assignment)."""
        self.timers.rebuild(
            (user, timer) for user, state in states if (timer := state.timer_ms()) is not None
        )

    def _fire_due(self, clock_ms: int, detected_ms: int) -> list[CartOutput]:
        outputs: list[CartOutput] = []
        for user in self.timers.due(clock_ms):
            state = self.store.get(user)
            if state is None:
                continue  # deleted behind our back (e.g. a table reset); nothing to fire
            state, produced = fire(user, state, clock_ms, self.cfg, detected_ms)
            outputs.extend(produced)
            self._put(user, state, clock_ms, stored=True)
        return outputs

    def _put(self, user: str, state: CartState, clock_ms: int, *, stored: bool) -> None:
        """Keep the state and its timer, or drop both once it is disposable.

        A state that was never stored is not deleted: a user who only views, with an empty cart,
        costs a live table no write at all.
        """
        if state.is_disposable(clock_ms):
            if stored:
                self.store.delete(user)
            self.timers.schedule(user, None)
        else:
            self.store.set(user, state)
            self.timers.schedule(user, state.timer_ms())

    def _wall(self) -> int | None:
        return self._wall_clock() if self._wall_clock is not None else None

    def _detected(self, wall: int | None) -> int:
        if wall is not None:
            return wall
        highest = self.clock.highest_ms
        return highest if highest is not None else 0
