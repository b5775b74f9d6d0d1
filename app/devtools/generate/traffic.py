"""`TrafficGenerator`: the clock, the schedule and the mix of actions, over the world's parts.

See the package docstring for the time model; the parts (`_Fraud`, `_Carts`, `_Malformed` over
`_World`) build the records, this module decides which part acts in each slot.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice

from app.contract.timeutil import now_ms
from app.devtools.generate.carts import _Carts
from app.devtools.generate.fraud import _Fraud
from app.devtools.generate.malformed import _Malformed
from app.devtools.generate.records import DEFAULT_START_MS, CartMix, GeneratedRecord, PatternRates

# Rough number of cart events per started session (outcomes and recoveries averaged); only
# used to turn `CartMix.share` into a per-slot probability of starting a session.
_EVENTS_PER_SESSION = 4.4


class TrafficGenerator(_Fraud, _Carts, _Malformed):
    """Realistic, seeded traffic for `transactions`, `fraud-feedback` and `cart-events`.

    Parameters (all optional):
    - `seed`: the whole output is a function of it (timestamps too, unless `realtime`).
    - `cards`, `users`, `merchants`, `products`: population sizes; `merchants` defaults to a
      quarter of the cards (at least 40) so terminals see a few transactions each.
    - `start_ms`: event time of the first record (default `DEFAULT_START_MS`; ignored when
      `realtime`).
    - `events_per_second`: records per second of event time. The default, 5, spreads 20 000
      records over about 67 minutes: long enough for 30-minute cart timeouts to expire and for
      some abandoned carts to be bought later, i.e. for replay to show both cart outputs.
    - `realtime`: stamp every record with the wall clock (`clock`, default `now_ms`) at the
      moment it is generated; the caller paces the calls (the demo sends `rate` per second).
    - `patterns`, `cart_mix`: see `PatternRates` and `CartMix`.
    - `feedback_rate`: fraction of new actions that are routine `legit` labels for a recent
      transaction (disputes that turned out fine), on top of the labels of compromised
      terminals.
    - `duplicate_rate`: fraction of transaction decisions that re-send an earlier record as is
      (a producer retry); Vigil must count it as a duplicate and otherwise ignore it.
    - `bad_rate`: fraction of records that are malformed bytes (not JSON, negative amount, bad
      currency, ...); 0 by default so a clean run has no dead letters.
    - `cart_timeout_s`: the cart timeout of the Vigil that will read this traffic. Sessions are
      paced relative to it (steps 0.3-4 % of it apart, abandoned users away for 60 times it,
      returning buyers back after 1.1-3 times it), so the same shopper model works for the
      contract's 30 minutes and for a demo worker whose timeout is seconds.
    """

    def __init__(
        self,
        seed: int = 7,
        cards: int = 1000,
        users: int = 500,
        start_ms: int | None = None,
        *,
        events_per_second: float = 5.0,
        realtime: bool = False,
        clock: Callable[[], int] | None = None,
        merchants: int | None = None,
        products: int = 400,
        patterns: PatternRates | None = None,
        cart_mix: CartMix | None = None,
        feedback_rate: float = 0.01,
        duplicate_rate: float = 0.001,
        bad_rate: float = 0.0,
        cart_timeout_s: float = 1800.0,
    ) -> None:
        if cards < 1 or users < 1 or products < 1:
            raise ValueError("cards, users and products must be >= 1")
        if events_per_second <= 0 or cart_timeout_s <= 0:
            raise ValueError("events_per_second and cart_timeout_s must be > 0")
        for name, p in (
            ("feedback_rate", feedback_rate),
            ("duplicate_rate", duplicate_rate),
            ("bad_rate", bad_rate),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {p}")
        self.seed = seed
        self.realtime = realtime
        self.events_per_second = events_per_second
        self.patterns = patterns if patterns is not None else PatternRates()
        self.cart_mix = cart_mix if cart_mix is not None else CartMix()
        self.feedback_rate = feedback_rate
        self.duplicate_rate = duplicate_rate
        self.bad_rate = bad_rate
        self.cart_timeout_ms = cart_timeout_s * 1000.0
        self._clock = clock if clock is not None else now_ms
        self._rng = random.Random(seed)
        share = min(max(self.cart_mix.share, 0.0), 0.95)
        self._p_session = share / (_EVENTS_PER_SESSION * (1.0 - share) + share)

        if realtime:
            self._now = float(self._clock())
        else:
            self._now = float(start_ms if start_ms is not None else DEFAULT_START_MS)
        self._queue = []
        self._seq = 0
        self.counts = {}  # what was produced, by kind and by pattern/outcome

        self._build_world(cards, users, merchants, products)
        self._recent_txns = deque(maxlen=2000)
        self._by_terminal = {}
        self._terminal_order = []  # terminals in first-seen order (deterministic)
        self._compromised = set()
        self._spike_ready = []  # cards with >= 5 counted transactions
        self._stream: Iterator[GeneratedRecord] = self._generate()

    # ---- public API ------------------------------------------------------------------------

    def stream(self) -> Iterator[GeneratedRecord]:
        """The endless record stream (shared: `records` and `stream` continue one another)."""
        return self._stream

    def __iter__(self) -> Iterator[GeneratedRecord]:
        return self._stream

    def records(self, n: int) -> list[GeneratedRecord]:
        """The next `n` records."""
        return list(islice(self._stream, n))

    @property
    def now_ms(self) -> int:
        """Event time of the latest slot."""
        return int(self._now)

    # ---- the clock and the mix of actions ---------------------------------------------------

    def _advance(self) -> int:
        if self.realtime:
            self._now = max(self._now, float(self._clock()))
        else:
            self._now += self._rng.expovariate(self.events_per_second) * 1000.0
        return int(self._now)

    def _generate(self) -> Iterator[GeneratedRecord]:
        while True:
            ts = self._advance()
            record: GeneratedRecord | None = None
            while record is None and self._queue and self._queue[0][0] <= self._now:
                _, _, builder = heapq.heappop(self._queue)
                record = builder(ts)
            if record is None:
                record = self._new_action(ts)
            self._count(record.kind)
            yield record

    def _new_action(self, ts: int) -> GeneratedRecord:
        rng = self._rng
        r = rng.random()
        if r < self.bad_rate:
            return self._malformed(ts)
        r = rng.random()
        if r < self._p_session:
            record = self._start_session(ts)
            if record is not None:
                return record
        elif r < self._p_session + self.feedback_rate and self._recent_txns:
            return self._routine_label(ts)
        if self._recent_txns and rng.random() < self.duplicate_rate:
            self._count("duplicate")
            return rng.choice(list(islice(reversed(self._recent_txns), 50))).record
        return self._txn_decision(ts)
