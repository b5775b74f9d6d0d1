"""Pending per-user timers, so firing costs the due timers and not a scan of every cart.

A min-heap of (deadline, user_id) plus a dict of each user's current deadline. Rescheduling
pushes a new entry and leaves the old one in the heap (lazy deletion): `due` skips an entry whose
deadline is no longer the user's current one. Heap order on the tuple breaks ties by user_id, so
timers due at the same instant fire in the same order in every run.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

# Rebuild the heap once stale entries outnumber live ones by this factor (plus some slack), so a
# user who is rescheduled on every event cannot grow the heap without bound.
_COMPACT_FACTOR = 4
_COMPACT_SLACK = 1024


class TimerIndex:
    """At most one pending timer per user; `len()` is the number of pending (live) timers."""

    __slots__ = ("_current", "_heap", "pops")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._current: dict[str, int] = {}
        self.pops = 0  # heap pops ever made (due and stale): firing-cost accounting

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._current

    def get(self, user_id: str) -> int | None:
        """The user's pending timer, or None."""
        return self._current.get(user_id)

    def schedule(self, user_id: str, deadline_ms: int | None) -> None:
        """Set the user's timer to `deadline_ms`, or cancel it with None."""
        if deadline_ms is None:
            self._current.pop(user_id, None)
            return
        if self._current.get(user_id) == deadline_ms:
            return  # already in the heap with this deadline
        self._current[user_id] = deadline_ms
        heapq.heappush(self._heap, (deadline_ms, user_id))
        if len(self._heap) > _COMPACT_FACTOR * len(self._current) + _COMPACT_SLACK:
            self._compact()

    def due(self, clock_ms: int) -> list[str]:
        """Remove and return every user whose current timer is <= `clock_ms`, earliest first."""
        heap, current = self._heap, self._current
        fired: list[str] = []
        while heap and heap[0][0] <= clock_ms:
            deadline, user = heapq.heappop(heap)
            self.pops += 1
            if current.get(user) == deadline:
                del current[user]
                fired.append(user)
        return fired

    def next_ms(self) -> int | None:
        """The earliest pending timer, or None (drops stale entries it finds on top)."""
        heap, current = self._heap, self._current
        while heap and current.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
            self.pops += 1
        return heap[0][0] if heap else None

    def rebuild(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Replace every timer with `pairs` (user_id, deadline), e.g. from stored state at start."""
        self._current = dict(pairs)
        self._compact()

    def _compact(self) -> None:
        self._heap = [(deadline, user) for user, deadline in self._current.items()]
        heapq.heapify(self._heap)
