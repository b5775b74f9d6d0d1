"""Per-card detector state: a small value that is read, updated and written once per transaction.

It holds exactly what the rules need and nothing that grows with the card's age:

* recent `(ts, amount)` entries, sorted by ts, for the windowed rules (velocity, card testing),
  kept while `ts > max_ts - config.entry_retention_ms`;
* Welford running count / mean / M2 over every prior non-duplicate amount (amount spike), three
  numbers however long the card lives;
* the location of the transaction processed last (impossible travel), or None when that one had
  no lat/lon;
* recent txn ids with their ts (duplicate check), kept while `ts > max_ts - id_retention_ms`;
* the newest ts seen, from which both horizons are measured;
* for risk scoring (`app.score`): the ts of the transaction processed last and per-day buckets
  (day number, count, sum of amounts) of the last `HABIT_DAYS` days, 31 small triples however
  busy the card is (layout 2; a layout-1 value reads as "no buckets yet").

Entries and ids are also capped at `config.max_ids_per_card` (oldest dropped first) so a card
flooded by a bot still has a bounded value. Within the cap and for arrivals at most
`max_disorder_ms` behind the newest ts, every windowed count is exact: trimming only ever drops
entries that no such arrival can look back to.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from typing import Any

from app.contract.events import Transaction
from app.detect.codec import pack, unpack_versions
from app.detect.config import FraudConfig

LAYOUT_VERSION = 2
_FIELDS = {1: 9, 2: 13}
#: Daily buckets kept per card: the widest habit window (30 days) plus today.
HABIT_DAYS = 31
DAY_MS = 86_400_000

Location = tuple[float, float, int]  # lat, lon, ts


class CardState:
    """Mutable per-card state; `FraudDetector.process` updates it in place (no per-event copy)."""

    __slots__ = (
        "_amounts",
        "_day_counts",
        "_day_sums",
        "_days",
        "_id_names",
        "_id_ts",
        "_ids",
        "_ts",
        "count",
        "last_location",
        "last_ts",
        "m2",
        "max_ts",
        "mean",
    )

    def __init__(self) -> None:
        """An empty state: the card has no transactions yet."""
        self.max_ts: int | None = None
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.last_location: Location | None = None
        self._ts: list[int] = []
        self._amounts: list[float] = []
        # Arrival-ordered (ts, txn id) log for cheap expiry from the front, plus the id -> ts
        # index the duplicate check reads. A re-counted id appears twice in the log; the index
        # holds its latest ts, and expiring the older log entry leaves the index alone.
        self._id_ts: deque[int] = deque()
        self._id_names: deque[str] = deque()
        self._ids: dict[str, int] = {}
        # Risk-scoring habits: ts of the transaction processed last, and daily buckets.
        self.last_ts: int | None = None
        self._days: list[int] = []
        self._day_counts: list[int] = []
        self._day_sums: list[float] = []

    # -- reading (rules) -----------------------------------------------------------------------

    @property
    def stddev(self) -> float:
        """Population standard deviation of all prior amounts (0 with no prior transaction)."""
        if self.count == 0:
            return 0.0
        return math.sqrt(max(self.m2, 0.0) / self.count)

    def count_in(self, after: int, until: int) -> int:
        """Number of remembered transactions with `after < ts <= until`."""
        ts = self._ts
        return bisect_right(ts, until) - bisect_right(ts, after)

    def count_small_in(self, after: int, until: int, max_amount: float) -> int:
        """Number of remembered transactions with `after < ts <= until` and amount <= max_amount."""
        ts = self._ts
        window = self._amounts[bisect_right(ts, after) : bisect_right(ts, until)]
        return len([a for a in window if a <= max_amount])

    def is_duplicate(self, txn_id: str, ts: int, window_ms: int) -> bool:
        """True when `txn_id` was counted on this card with a ts less than `window_ms` from `ts`."""
        seen = self._ids.get(txn_id)
        if seen is None:
            return False
        if abs(ts - seen) < window_ms:
            return True
        # Rare path: the id was counted more than once (sightings a window apart) and the index
        # holds only the latest; any remembered sighting within the window makes a duplicate.
        return any(
            name == txn_id and abs(ts - t) < window_ms
            for t, name in zip(self._id_ts, self._id_names, strict=True)
        )

    def habits(self, today: int) -> tuple[int, float, int, float, int, float]:
        """(count, sum of amounts) over the last 1, 7 and 30 days (day numbers in
        (today - N, today]), from the daily buckets, in one pass."""
        n1 = n7 = n30 = 0
        s1 = s7 = s30 = 0.0
        for day, n, amount in zip(self._days, self._day_counts, self._day_sums, strict=True):
            age = today - day
            if age < 0 or age >= 30:
                continue
            n30 += n
            s30 += amount
            if age < 7:
                n7 += n
                s7 += amount
                if age < 1:
                    n1 += n
                    s1 += amount
        return n1, s1, n7, s7, n30, s30

    @property
    def entry_count(self) -> int:
        """Number of remembered (ts, amount) entries."""
        return len(self._ts)

    @property
    def id_count(self) -> int:
        """Number of remembered txn-id log entries."""
        return len(self._id_ts)

    # -- updating ------------------------------------------------------------------------------

    def add(self, txn: Transaction, config: FraudConfig) -> None:
        """Count a non-duplicate transaction, then trim to the retention horizons and caps."""
        ts = txn.ts
        raised = self.max_ts is None or ts > self.max_ts
        if raised:
            self.max_ts = ts
        max_ts: int = self.max_ts  # type: ignore[assignment]

        amount = txn.amount
        n = self.count + 1
        delta = amount - self.mean
        self.mean += delta / n
        self.m2 += delta * (amount - self.mean)
        self.count = n

        self.last_ts = ts
        self._add_to_day(ts // DAY_MS, amount)

        lat, lon = txn.lat, txn.lon
        self.last_location = (lat, lon, ts) if lat is not None and lon is not None else None

        cap = config.max_ids_per_card
        horizon = max_ts - config.entry_retention_ms
        times, amounts = self._ts, self._amounts
        if ts > horizon:
            if not times or times[-1] <= ts:
                times.append(ts)
                amounts.append(amount)
            else:
                i = bisect_right(times, ts)
                times.insert(i, ts)
                amounts.insert(i, amount)
        if raised and times and times[0] <= horizon:
            k = bisect_right(times, horizon)
            del times[:k]
            del amounts[:k]
        if len(times) > cap:
            k = len(times) - cap
            del times[:k]
            del amounts[:k]

        id_horizon = max_ts - config.id_retention_ms
        log_ts, log_names, index = self._id_ts, self._id_names, self._ids
        if ts > id_horizon:
            txn_id = txn.txn_id
            index[txn_id] = ts
            log_ts.append(ts)
            log_names.append(txn_id)
        while log_ts and (log_ts[0] <= id_horizon or len(log_ts) > cap):
            old_ts = log_ts.popleft()
            old_id = log_names.popleft()
            if index.get(old_id) == old_ts:
                del index[old_id]

    def _add_to_day(self, day: int, amount: float) -> None:
        """Count one amount into its day's bucket; keep only the newest `HABIT_DAYS` days."""
        days = self._days
        if days and days[-1] == day:
            self._day_counts[-1] += 1
            self._day_sums[-1] += amount
            return
        i = bisect_right(days, day)
        if i and days[i - 1] == day:
            self._day_counts[i - 1] += 1
            self._day_sums[i - 1] += amount
            return
        days.insert(i, day)
        self._day_counts.insert(i, 1)
        self._day_sums.insert(i, amount)
        newest = days[-1]
        k = bisect_right(days, newest - HABIT_DAYS)
        if k:
            del days[:k]
            del self._day_counts[:k]
            del self._day_sums[:k]

    # -- bytes ---------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Versioned layout `[2, max_ts, count, mean, m2, loc, ts, amounts, id_ts, ids,
        last_ts, days, day_counts, day_sums]` (layout 1 lacked the last four)."""
        return pack(LAYOUT_VERSION, *self._layout())

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview | str) -> CardState:
        """Read a value written by `to_bytes` (raises `StateFormatError` when it cannot)."""
        fields = unpack_versions(raw, "card state", _FIELDS)
        max_ts, count, mean, m2, loc, times, amounts, id_ts, id_names = fields[:9]
        self = cls.__new__(cls)
        if len(fields) > 9:
            self.last_ts, self._days, self._day_counts, self._day_sums = fields[9:]
        else:  # layout 1: written before risk scoring; its habits start from here
            self.last_ts, self._days, self._day_counts, self._day_sums = max_ts, [], [], []
        self.max_ts = max_ts
        self.count = count
        self.mean = float(mean)
        self.m2 = float(m2)
        self.last_location = (loc[0], loc[1], loc[2]) if loc is not None else None
        self._ts = times
        self._amounts = amounts
        self._id_ts = deque(id_ts)
        self._id_names = deque(id_names)
        self._ids = dict(zip(id_names, id_ts, strict=True))
        return self

    def _layout(self) -> tuple[Any, ...]:
        return (
            self.max_ts,
            self.count,
            self.mean,
            self.m2,
            self.last_location,
            self._ts,
            self._amounts,
            list(self._id_ts),
            list(self._id_names),
            self.last_ts,
            self._days,
            self._day_counts,
            self._day_sums,
        )

    def __eq__(self, other: object) -> bool:
        """Equal when every remembered number and entry is equal (what `to_bytes` would write)."""
        if not isinstance(other, CardState):
            return NotImplemented
        return self._layout() == other._layout()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"CardState(max_ts={self.max_ts}, count={self.count}, mean={self.mean:g}, "
            f"entries={len(self._ts)}, ids={len(self._ids)})"
        )
