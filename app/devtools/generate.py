"""Seeded synthetic traffic for Vigil's three input topics: the demo, the tests and the benchmark.

Why a model and not random records: detectors are only worth showing (and only testable end to
end) against traffic that looks like the real thing. Random records would either never fire a
rule or fire all of them all the time. So most of what this module produces is *normal*: cards
that spend around their own mean (log-normal amounts) at merchants and terminals near a home
city, shoppers who browse, fill carts and buy. Into that background it injects, with small
configurable probabilities, scripted episodes of exactly the behaviour the six fraud rules and
the cart machine look for (see `PatternRates` and `CartMix`), plus, when asked, a few records
that must go to dead letters.

Everything is driven by one `random.Random(seed)`, and no iteration ever depends on hash order,
so a seed always gives the same records (`realtime=True` aside, whose timestamps are the wall
clock). No Kafka import: callers map `topic_kind` to a topic name (`topic_for`) and send.

Time model: a virtual event-time clock advances one *slot* per record (exponential gaps at
`events_per_second`, or the wall clock in realtime mode). Scripted episodes schedule their later
steps at absolute times; each slot emits the earliest due step if there is one, otherwise a new
action (a normal transaction, a new cart session, a label, ...). The rate is therefore exactly
the configured one whatever the mix, and an episode's steps keep their spacing (a step waits at
most a few slots behind its schedule).
"""

from __future__ import annotations

import heapq
import math
import random
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import partial
from itertools import accumulate, islice
from pathlib import Path
from typing import Any, Literal, NamedTuple

import orjson

from app.settings import Settings
from app.timeutil import format_ts, now_ms

__all__ = [
    "DEFAULT_START_MS",
    "TOPIC_KINDS",
    "CartMix",
    "GeneratedRecord",
    "PatternRates",
    "TopicKind",
    "TrafficGenerator",
    "to_bytes",
    "topic_for",
    "write_jsonl",
]

TopicKind = Literal["transactions", "feedback", "cart_events"]
TOPIC_KINDS: tuple[TopicKind, ...] = ("transactions", "feedback", "cart_events")

#: 2026-11-22T10:00:00Z: a fixed start makes a seed's output identical on every run and machine.
DEFAULT_START_MS = 1_795_341_600_000


class GeneratedRecord(NamedTuple):
    """One record for an input topic: `(topic_kind, key, value)`.

    `value` is a JSON-ready dict, or raw bytes for a deliberately malformed record (those must
    reach Kafka byte for byte, which a dict could not express).
    """

    kind: TopicKind
    key: str
    value: dict[str, Any] | bytes


@dataclass(frozen=True, slots=True)
class PatternRates:
    """Probability, per new transaction the generator decides on, of starting each fraud pattern.

    Defaults are small (about 0.45 % of transactions start an episode) so alerts stay the
    exception, as in real traffic, yet 20 000 records hold several episodes of every kind.
    """

    velocity: float = 0.001  # 6-9 online transactions on one card within ~30 s
    amount_spike: float = 0.001  # one amount far above a card's own history
    impossible_travel: float = 0.001  # a home purchase, then one >= 1500 km away minutes later
    card_testing: float = 0.0005  # 5-8 amounts <= 2.00 within 8 min, often then a cash-out
    large_amount: float = 0.0005  # one transaction of 10 000-25 000
    compromised_terminal: float = 0.0005  # 2-3 fraud labels for earlier txns at one terminal

    def scaled(self, factor: float) -> PatternRates:
        """Every rate times `factor` (the demo shows more fraud per minute than reality has)."""
        return replace(
            self, **{f.name: min(1.0, getattr(self, f.name) * factor) for f in fields(self)}
        )

    @property
    def total(self) -> float:
        """Probability that a transaction decision starts some pattern."""
        return sum(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True, slots=True)
class CartMix:
    """How shoppers behave. Session pacing scales with the cart timeout (see `TrafficGenerator`).

    `share` is the fraction of all records that are cart events; the session outcomes split
    sessions into purchased, abandoned and browse-only (the rest); `recover` is the fraction of
    abandoned carts whose user comes back within the recovery window and buys.
    """

    share: float = 0.35
    purchase: float = 0.45
    abandon: float = 0.30
    recover: float = 0.35


# --------------------------------------------------------------------------------------------
# The world: cities, merchants, products
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _City:
    name: str
    country: str
    currency: str
    lat: float
    lon: float
    utc_offset_min: int  # standard time; enough to write realistic RFC 3339 offsets
    weight: float  # share of cards and shoppers living there
    per_eur: float  # local currency units per euro: amounts look like local prices


_CITIES: tuple[_City, ...] = (
    _City("Paris", "FR", "EUR", 48.857, 2.352, 60, 8, 1.0),
    _City("Lyon", "FR", "EUR", 45.764, 4.836, 60, 3, 1.0),
    _City("Berlin", "DE", "EUR", 52.520, 13.405, 60, 7, 1.0),
    _City("Munich", "DE", "EUR", 48.137, 11.576, 60, 4, 1.0),
    _City("Madrid", "ES", "EUR", 40.417, -3.704, 60, 5, 1.0),
    _City("Milan", "IT", "EUR", 45.464, 9.190, 60, 4, 1.0),
    _City("Amsterdam", "NL", "EUR", 52.368, 4.904, 60, 3, 1.0),
    _City("Lisbon", "PT", "EUR", 38.722, -9.139, 0, 2, 1.0),
    _City("London", "GB", "GBP", 51.507, -0.128, 0, 8, 0.85),
    _City("Manchester", "GB", "GBP", 53.481, -2.243, 0, 2, 0.85),
    _City("Zurich", "CH", "CHF", 47.377, 8.541, 60, 2, 0.95),
    _City("Warsaw", "PL", "PLN", 52.230, 21.012, 60, 3, 4.3),
    _City("New York", "US", "USD", 40.713, -74.006, -300, 9, 1.1),
    _City("Chicago", "US", "USD", 41.878, -87.630, -360, 4, 1.1),
    _City("San Francisco", "US", "USD", 37.775, -122.419, -480, 4, 1.1),
    _City("Toronto", "CA", "CAD", 43.653, -79.383, -300, 3, 1.5),
    _City("Sao Paulo", "BR", "BRL", -23.551, -46.633, -180, 4, 5.5),
    _City("Dubai", "AE", "AED", 25.205, 55.271, 240, 2, 4.0),
    _City("Singapore", "SG", "SGD", 1.352, 103.820, 480, 3, 1.45),
    _City("Dublin", "IE", "EUR", 53.350, -6.260, 0, 3, 1.0),
    _City("Sydney", "AU", "AUD", -33.869, 151.209, 600, 3, 1.65),
)

# Merchant category codes (ISO 18245) by how a card typically uses them.
_MCC_EVERYDAY = ("5411", "5812", "5814", "5541", "5912", "4111", "5499")
_MCC_SHOPPING = ("5651", "5732", "5311", "5942", "5999")
_MCC_LUXURY = ("5944", "5732", "4511", "5094")
_MCC_ONLINE = ("5815", "5816", "5399", "4899", "5967")

_EARTH_RADIUS_KM = 6371.0
_FAR_KM = 1500.0  # impossible-travel episodes jump at least this far

TsStyle = Literal["z_ms", "z", "offset", "epoch_ms"]


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _rfc3339(ms: int, offset_min: int = 0, millis: bool = True) -> str:
    """RFC 3339 in a given UTC offset: producers in a shop's own time zone send these."""
    if offset_min == 0:
        text = format_ts(ms)
        return text if millis else text[:19] + "Z"
    secs, frac = divmod(ms + offset_min * 60_000, 1000)
    sign = "+" if offset_min > 0 else "-"
    hours, minutes = divmod(abs(offset_min), 60)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{frac:03d}{sign}{hours:02d}:{minutes:02d}"


@dataclass(slots=True)
class _Merchant:
    merchant_id: str
    mcc: str
    city: int | None  # None: online only
    lat: float | None
    lon: float | None
    terminals: list[str]
    ts_style: TsStyle  # each producer integration sends one timestamp format...
    amount_as_string: bool  # ...and one amount encoding, as real integrations do


@dataclass(slots=True)
class _Card:
    index: int
    card_id: str
    city: int
    mu: float  # log of the card's typical amount
    sigma: float
    online_share: float
    device_id: str
    # Welford statistics over every non-duplicate amount, mirrored from the detector, so an
    # injected spike is sized against what the detector actually knows about the card.
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def observe(self, amount: float) -> None:
        self.count += 1
        delta = amount - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (amount - self.mean)

    @property
    def stddev(self) -> float:
        return math.sqrt(max(self.m2, 0.0) / self.count) if self.count else 0.0


@dataclass(slots=True)
class _User:
    user_id: str
    city: int
    app: bool  # mobile-app events carry epoch-ms timestamps, web events RFC 3339
    cart: dict[str, list[Any]] = field(default_factory=dict)  # product -> [quantity, price]
    busy_until: float = 0.0  # virtual ms: in a session, or away after abandoning
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class _TxnRef:
    """What a later label or duplicate needs to know about a transaction already sent."""

    txn_id: str
    card_id: str
    merchant_id: str
    terminal_id: str | None
    record: GeneratedRecord


Builder = Callable[[int], GeneratedRecord | None]

# Rough number of cart events per started session (outcomes and recoveries averaged); only
# used to turn `CartMix.share` into a per-slot probability of starting a session.
_EVENTS_PER_SESSION = 4.4


class TrafficGenerator:
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
        self._queue: list[tuple[float, int, Builder]] = []
        self._seq = 0
        self.counts: dict[str, int] = {}  # what was produced, by kind and by pattern/outcome

        self._build_world(cards, users, merchants, products)
        self._recent_txns: deque[_TxnRef] = deque(maxlen=2000)
        self._by_terminal: dict[str, deque[_TxnRef]] = {}
        self._terminal_order: list[str] = []  # terminals in first-seen order (deterministic)
        self._compromised: set[str] = set()
        self._spike_ready: list[int] = []  # cards with >= 5 counted transactions
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

    # ---- the world ---------------------------------------------------------------------------

    def _hex(self, bits: int) -> str:
        return f"{self._rng.getrandbits(bits):0{bits // 4}x}"

    def _build_world(
        self, n_cards: int, n_users: int, n_merchants: int | None, n_products: int
    ) -> None:
        rng = self._rng
        city_cum = list(accumulate(c.weight for c in _CITIES))
        self._city_cum = city_cum
        self._far: list[list[int]] = [
            [
                j
                for j, other in enumerate(_CITIES)
                if _haversine_km(city.lat, city.lon, other.lat, other.lon) >= _FAR_KM
            ]
            for city in _CITIES
        ]

        count = n_merchants if n_merchants is not None else max(40, n_cards // 4)
        self._merchants: list[_Merchant] = []
        self._local: list[list[int]] = [[] for _ in _CITIES]
        self._online: list[int] = []
        self._luxury_local: list[list[int]] = [[] for _ in _CITIES]
        self._luxury_online: list[int] = []
        styles: tuple[TsStyle, ...] = ("z_ms", "z_ms", "z_ms", "z", "offset", "epoch_ms")
        for i in range(count):
            if i % 5 == 4:  # one merchant in five sells online only
                mcc = rng.choice(_MCC_ONLINE + _MCC_SHOPPING)
                merchant = _Merchant(
                    f"m-{self._hex(24)}", mcc, None, None, None, [], "z_ms", rng.random() < 0.3
                )
                self._online.append(i)
                if mcc in _MCC_LUXURY:
                    self._luxury_online.append(i)
            else:
                city = i % len(_CITIES) if i < 2 * len(_CITIES) else self._pick_city()
                home = _CITIES[city]
                r = rng.random()
                mcc = rng.choice(
                    _MCC_EVERYDAY if r < 0.6 else _MCC_SHOPPING if r < 0.9 else _MCC_LUXURY
                )
                # Shops within ~12 km of the centre: no two of a city are 100 km apart.
                lat = round(home.lat + rng.uniform(-0.08, 0.08), 5)
                lon = round(home.lon + rng.uniform(-0.1, 0.1), 5)
                merchant_id = f"m-{self._hex(24)}"
                terminals = [f"pos-{self._hex(32)}" for _ in range(rng.randint(1, 3))]
                merchant = _Merchant(
                    merchant_id,
                    mcc,
                    city,
                    lat,
                    lon,
                    terminals,
                    rng.choice(styles),
                    rng.random() < 0.3,
                )
                self._local[city].append(i)
                if mcc in _MCC_LUXURY:
                    self._luxury_local[city].append(i)
            self._merchants.append(merchant)
        if not self._online:  # tiny worlds still need somewhere to shop online
            self._online.append(0)

        self._cards: list[_Card] = []
        weights: list[float] = []
        for index in range(n_cards):
            typical = min(400.0, max(6.0, rng.lognormvariate(math.log(35.0), 0.7)))
            city = self._pick_city()
            self._cards.append(
                _Card(
                    index=index,
                    card_id=f"tok_{self._hex(48)}",
                    city=city,
                    mu=math.log(typical * _CITIES[city].per_eur),
                    sigma=rng.uniform(0.25, 0.45),
                    online_share=rng.uniform(0.1, 0.5),
                    device_id=f"dev-{self._hex(32)}",
                )
            )
            weights.append(rng.lognormvariate(0.0, 0.5))  # some cards are used far more
        self._card_cum = list(accumulate(weights))

        self._users: list[_User] = [
            _User(f"u-{self._hex(32)}", self._pick_city(), rng.random() < 0.4)
            for _ in range(n_users)
        ]
        self._products: list[tuple[str, float]] = []  # id, price in EUR
        for _ in range(n_products):
            eur = min(1500.0, max(2.0, rng.lognormvariate(math.log(25.0), 0.9)))
            self._products.append((f"sku-{self._hex(24)}", eur))

    def _pick_city(self) -> int:
        r = self._rng.random() * self._city_cum[-1]
        return min(bisect_right(self._city_cum, r), len(_CITIES) - 1)

    def _pick_card(self) -> _Card:
        r = self._rng.random() * self._card_cum[-1]
        return self._cards[min(bisect_right(self._card_cum, r), len(self._cards) - 1)]

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    # ---- the clock and the schedule ---------------------------------------------------------

    def _schedule(self, at_ms: float, builder: Builder) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, builder))

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

    # ---- transactions ------------------------------------------------------------------------

    def _txn_decision(self, ts: int) -> GeneratedRecord:
        p = self.patterns
        r = self._rng.random()
        starters: tuple[tuple[float, Callable[[int], GeneratedRecord | None]], ...] = (
            (p.velocity, self._velocity),
            (p.amount_spike, self._amount_spike),
            (p.impossible_travel, self._impossible_travel),
            (p.card_testing, self._card_testing),
            (p.large_amount, self._large_amount),
            (p.compromised_terminal, self._compromise_terminal),
        )
        edge = 0.0
        for probability, start in starters:
            edge += probability
            if r < edge:
                record = start(ts)
                if record is not None:
                    return record
                break
        return self._normal_txn(self._pick_card(), ts)

    def _amount(self, card: _Card, factor: float = 1.0) -> float:
        # Everyday spending stays below the large-amount threshold in every currency.
        amount = self._rng.lognormvariate(card.mu, card.sigma) * factor
        return round(min(9000.0, max(0.5, amount)), 2)

    def _txn(
        self,
        card: _Card,
        merchant_index: int,
        ts: int,
        amount: float,
        *,
        terminal: str | None = None,
        channel: str | None = None,
    ) -> GeneratedRecord:
        """Build one transaction value and remember it (stats, labels, duplicates)."""
        rng = self._rng
        merchant = self._merchants[merchant_index]
        city = _CITIES[merchant.city if merchant.city is not None else card.city]
        online = merchant.city is None
        value: dict[str, Any] = {
            "txn_id": f"t-{self._hex(64)}",
            "card_id": card.card_id,
            "amount": f"{amount:.2f}" if merchant.amount_as_string else amount,
            # Billed in the card's currency (what the issuer sees), wherever the shop is.
            "currency": _CITIES[card.city].currency,
            "merchant_id": merchant.merchant_id,
            "ts": self._format_ts(ts, merchant.ts_style, city.utc_offset_min),
            "mcc": merchant.mcc if rng.random() < 0.8 else int(merchant.mcc),
            "country": city.country,
            "channel": channel or ("ecom" if online else "pos"),
        }
        if online:
            value["device_id"] = card.device_id
        else:
            terminal = terminal or rng.choice(merchant.terminals)
            value["terminal_id"] = terminal
            value["lat"] = merchant.lat
            value["lon"] = merchant.lon
        card.observe(amount)
        if card.count == 5:
            self._spike_ready.append(card.index)
        record = GeneratedRecord("transactions", card.card_id, value)
        ref = _TxnRef(value["txn_id"], card.card_id, merchant.merchant_id, terminal, record)
        self._recent_txns.append(ref)
        if terminal is not None:
            seen = self._by_terminal.get(terminal)
            if seen is None:
                seen = self._by_terminal[terminal] = deque(maxlen=12)
                self._terminal_order.append(terminal)
            seen.append(ref)
        return record

    def _format_ts(self, ts: int, style: TsStyle, offset_min: int) -> str | int:
        if style == "epoch_ms":
            return ts
        if style == "offset":
            return _rfc3339(ts, offset_min)
        return _rfc3339(ts, 0, millis=style == "z_ms")

    def _normal_txn(self, card: _Card, ts: int) -> GeneratedRecord:
        rng = self._rng
        local = self._local[card.city]
        if local and rng.random() >= card.online_share:
            merchant = rng.choice(local)
        else:
            merchant = rng.choice(self._online)
        self._count("normal_txn")
        return self._txn(card, merchant, ts, self._amount(card))

    def _velocity(self, ts: int) -> GeneratedRecord:
        """A stolen card run through an online shop: 6-9 purchases a few seconds apart."""
        rng = self._rng
        card = self._pick_card()
        merchant = rng.choice(self._online)
        n = rng.randint(6, 9)
        at = float(ts)
        for _ in range(n - 1):
            at += rng.uniform(1_000, 5_000)
            self._schedule(
                at, lambda t: self._txn(card, merchant, t, self._amount(card, rng.uniform(0.6, 2)))
            )
        self._count("pattern_velocity")
        return self._txn(card, merchant, ts, self._amount(card, rng.uniform(0.6, 2)))

    def _amount_spike(self, ts: int) -> GeneratedRecord | None:
        """One purchase several times larger than anything the card's history explains."""
        if not self._spike_ready:
            return None
        rng = self._rng
        card = self._cards[rng.choice(self._spike_ready)]
        need = max(card.mean + 6 * card.stddev, 4 * card.mean)
        amount = round(need * rng.uniform(1.1, 1.6), 2)
        local = self._luxury_local[card.city] or self._local[card.city]
        merchant = rng.choice(local) if local and rng.random() < 0.7 else rng.choice(self._online)
        self._count("pattern_amount_spike")
        return self._txn(card, merchant, ts, amount)

    def _impossible_travel(self, ts: int) -> GeneratedRecord | None:
        """A purchase at home, then a cloned card used >= 1500 km away 0.5-12 minutes later."""
        rng = self._rng
        card = self._pick_card()
        home_shops = self._local[card.city]
        far = [c for c in self._far[card.city] if self._local[c]]
        if not home_shops or not far:
            return None
        away = rng.choice(far)
        away_shop = rng.choice(self._local[away])
        self._schedule(
            ts + rng.uniform(0.5, 12) * 60_000,
            lambda t: self._txn(card, away_shop, t, self._amount(card, rng.uniform(1, 4))),
        )
        self._count("pattern_impossible_travel")
        return self._txn(card, rng.choice(home_shops), ts, self._amount(card))

    def _card_testing(self, ts: int) -> GeneratedRecord:
        """A fraudster checks a stolen number with tiny charges, then sometimes cashes out."""
        rng = self._rng
        card = self._pick_card()
        merchant = rng.choice(self._online)

        def small(t: int) -> GeneratedRecord:
            return self._txn(card, merchant, t, round(rng.uniform(0.3, 2.0), 2))

        at = float(ts)
        for _ in range(rng.randint(5, 8) - 1):
            at += rng.uniform(3_000, 60_000)
            self._schedule(at, small)
        if rng.random() < 0.5:
            cash_out = rng.choice(self._luxury_online or self._online)
            self._schedule(
                at + rng.uniform(60_000, 300_000),
                lambda t: self._txn(card, cash_out, t, self._amount(card, rng.uniform(3, 8))),
            )
        self._count("pattern_card_testing")
        return small(ts)

    def _large_amount(self, ts: int) -> GeneratedRecord:
        """A single very large purchase (jewellery, electronics, flights)."""
        rng = self._rng
        card = self._pick_card()
        local = self._luxury_local[card.city]
        if local and rng.random() < 0.6:
            merchant = rng.choice(local)
        else:
            merchant = rng.choice(self._luxury_online or self._online)
        self._count("pattern_large_amount")
        return self._txn(card, merchant, ts, round(rng.uniform(10_000, 25_000), 2))

    def _compromise_terminal(self, ts: int) -> GeneratedRecord | None:
        """A skimmed terminal: 2-3 of its earlier transactions are confirmed fraud, then it is
        used again (by any card) and every later transaction there should alert."""
        rng = self._rng
        for _ in range(10):
            if not self._terminal_order:
                return None
            terminal = rng.choice(self._terminal_order)
            seen = self._by_terminal[terminal]
            if terminal not in self._compromised and len({r.txn_id for r in seen}) >= 2:
                break
        else:
            return None
        self._compromised.add(terminal)
        victims: list[_TxnRef] = []
        for ref in reversed(seen):
            if ref.txn_id not in {v.txn_id for v in victims}:
                victims.append(ref)
        victims = victims[: rng.randint(2, 3)]
        at = float(ts)
        for ref in victims[1:]:
            at += rng.uniform(5_000, 60_000)
            self._schedule(at, partial(self._label, ref, "fraud"))
        shop = next(
            i for i, m in enumerate(self._merchants) if m.merchant_id == victims[0].merchant_id
        )
        city = self._merchants[shop].city
        locals_ = [c for c in self._cards if c.city == city] or self._cards
        for _ in range(rng.randint(2, 4)):
            at += rng.uniform(20_000, 120_000)
            card = rng.choice(locals_)
            self._schedule(
                at, partial(self._txn, card, shop, amount=self._amount(card), terminal=terminal)
            )
        # The bank then has the terminal swapped: later sales at the shop use a new one, so a
        # campaign alerts for a while instead of on every sale there for the next 28 days.
        self._schedule(at + rng.uniform(60_000, 600_000), lambda t: self._replace(shop, terminal))
        self._count("pattern_compromised_terminal")
        return self._label(victims[0], "fraud", ts)

    def _replace(self, shop: int, terminal: str) -> None:
        terminals = self._merchants[shop].terminals
        if terminal in terminals:
            terminals[terminals.index(terminal)] = f"pos-{self._hex(32)}"
        return None

    # ---- feedback ----------------------------------------------------------------------------

    def _label(self, ref: _TxnRef, label: str, ts: int) -> GeneratedRecord:
        value: dict[str, Any] = {
            "txn_id": ref.txn_id,
            "label": label,
            "ts": ts,
            "card_id": ref.card_id,
            "merchant_id": ref.merchant_id,
        }
        if ref.terminal_id is not None:
            value["terminal_id"] = ref.terminal_id
        return GeneratedRecord("feedback", ref.txn_id, value)

    def _routine_label(self, ts: int) -> GeneratedRecord:
        """A dispute closed as legitimate: the common label, which must never raise an alert."""
        ref = self._rng.choice(self._recent_txns)
        self._count("label_legit")
        return self._label(ref, "legit", ts)

    # ---- carts -------------------------------------------------------------------------------

    def _idle_user(self) -> _User | None:
        for _ in range(8):
            user = self._rng.choice(self._users)
            if user.busy_until <= self._now:
                return user
        return None

    def _start_session(self, ts: int) -> GeneratedRecord | None:
        """Script a whole shopping session now; its steps are emitted as their times come."""
        user = self._idle_user()
        if user is None:
            return None
        rng, mix = self._rng, self.cart_mix
        user.session_id = f"s-{self._hex(40)}"
        r = rng.random()
        outcome = (
            "purchase"
            if r < mix.purchase
            else "abandon"
            if r < mix.purchase + mix.abandon
            else "browse"
        )
        steps: list[str] = ["view"] * rng.randint(1, 3)
        if outcome != "browse":
            for _ in range(rng.randint(1, 3)):
                steps.append("add")
                if rng.random() < 0.4:
                    steps.append("view")
            if rng.random() < 0.2:
                steps.append("remove")
            if outcome == "purchase" or rng.random() < 0.4:
                steps.append("checkout")
            if outcome == "purchase":
                steps.append("purchase")
        self._count(f"session_{outcome}")
        at = float(ts)
        for step in steps[1:]:
            at += self.cart_timeout_ms * rng.uniform(0.003, 0.04)
            self._schedule(at, partial(self._cart_step, user, step))
        if outcome == "abandon":
            if rng.random() < mix.recover:
                back = at + self.cart_timeout_ms * rng.uniform(1.1, 3.0)
                self._schedule_return(user, back)
                user.busy_until = back + self.cart_timeout_ms
            else:
                user.busy_until = at + self.cart_timeout_ms * 60
        else:
            user.busy_until = at + self.cart_timeout_ms * rng.uniform(0.05, 0.5)
        return self._cart_step(user, steps[0], ts)

    def _schedule_return(self, user: _User, at: float) -> None:
        """The shopper comes back to the abandoned cart and buys it (a recovery)."""
        rng = self._rng
        self._count("session_recovery")

        def new_session(t: int) -> GeneratedRecord:
            user.session_id = f"s-{self._hex(40)}"
            return self._cart_step(user, "view_cart", t)

        self._schedule(at, new_session)
        for step in ("checkout", "purchase"):
            at += self.cart_timeout_ms * rng.uniform(0.003, 0.04)
            self._schedule(at, partial(self._cart_step, user, step))

    def _product(self, user: _User) -> tuple[str, float]:
        """A catalogue item with its price in the shopper's currency (x.99 pricing)."""
        product, eur = self._rng.choice(self._products)
        return product, round(max(1.0, math.ceil(eur * _CITIES[user.city].per_eur)) - 0.01, 2)

    def _cart_step(self, user: _User, step: str, ts: int) -> GeneratedRecord:
        rng = self._rng
        currency = _CITIES[user.city].currency
        value: dict[str, Any] = {
            "event_id": f"e-{self._hex(64)}",
            "user_id": user.user_id,
            "session_id": user.session_id,
        }
        if step == "remove" and not user.cart:
            step = "view"
        if step == "view_cart":
            step = "view"
            if user.cart:
                product = rng.choice(list(user.cart))
                value.update(type="view", product_id=product, price=user.cart[product][1])
        if step == "view" and "type" not in value:
            product, price = self._product(user)
            value.update(type="view", product_id=product, price=price, currency=currency)
        elif step == "add":
            product, price = self._product(user)
            quantity = 1 if rng.random() < 0.8 else rng.randint(2, 3)
            value.update(
                type="add_to_cart",
                product_id=product,
                quantity=quantity,
                price=price,
                currency=currency,
            )
            held = user.cart.setdefault(product, [0, price])
            held[0] += quantity
            held[1] = price
        elif step == "remove":
            product = rng.choice(list(user.cart))
            held = user.cart[product]
            quantity = 1 if rng.random() < 0.7 else held[0]
            value.update(type="remove_from_cart", product_id=product, quantity=quantity)
            held[0] -= quantity
            if held[0] <= 0:
                del user.cart[product]
        elif step == "checkout":
            value.update(type="begin_checkout", currency=currency)
        elif step == "purchase":
            total = sum(q * p for q, p in user.cart.values())
            value.update(
                type="purchase",
                order_id=f"o-{self._hex(40)}",
                order_total=round(total, 2),
                currency=currency,
            )
            user.cart.clear()
        value["ts"] = ts if user.app else _rfc3339(ts)
        return GeneratedRecord("cart_events", user.user_id, value)

    # ---- malformed input ---------------------------------------------------------------------

    def _malformed(self, ts: int) -> GeneratedRecord:
        """Something a buggy producer really sends; every one must end up in dead letters."""
        rng = self._rng
        self._count("malformed")
        card = self._pick_card()
        kind = rng.randrange(9)
        txn: dict[str, Any] = {
            "txn_id": f"t-{self._hex(64)}",
            "card_id": card.card_id,
            "amount": self._amount(card),
            "currency": _CITIES[card.city].currency,
            "merchant_id": self._merchants[rng.choice(self._online)].merchant_id,
            "ts": _rfc3339(ts),
        }
        if kind == 0:  # cut off mid-record (a producer that crashed while writing)
            raw = orjson.dumps(txn)
            return GeneratedRecord(
                "transactions", card.card_id, raw[: rng.randint(5, len(raw) - 2)]
            )
        if kind == 1:
            txn["amount"] = -txn["amount"]  # a refund sent to the wrong topic
        elif kind == 2:
            txn["currency"] = rng.choice(["eur", "EURO", "€", "US"])
        elif kind == 3:
            txn["amount"] = f"{txn['amount']:.2f}".replace(".", ",")  # a locale-formatted amount
        elif kind == 4:
            txn["ts"] = time.strftime("%d/%m/%Y %H:%M", time.gmtime(ts // 1000))
        elif kind == 5:
            txn["lat"], txn["lon"] = 123.4, 45.6  # lat and lon swapped and mangled
        elif kind == 6:
            return GeneratedRecord(
                "transactions", card.card_id, b"txn_id=" + txn["txn_id"].encode() + b";amount=1"
            )
        elif kind == 7:
            ref = self._recent_txns[-1] if self._recent_txns else None
            txn_id = ref.txn_id if ref is not None else txn["txn_id"]
            value = {"txn_id": txn_id, "label": rng.choice(["FRAUD", "maybe", "chargeback"])}
            value["ts"] = ts
            return GeneratedRecord("feedback", txn_id, orjson.dumps(value))
        else:
            user = rng.choice(self._users)
            product, _ = rng.choice(self._products)
            cart: dict[str, Any] = {
                "event_id": f"e-{self._hex(64)}",
                "user_id": user.user_id,
                "type": "add_to_cart",
                "product_id": product,
                "currency": _CITIES[user.city].currency,
                "ts": _rfc3339(ts),
            }
            if rng.random() < 0.5:
                cart["quantity"] = 0  # no price either: two reasons, the first one is reported
            else:
                cart["type"] = "wishlist_add"
                cart["price"] = 9.99
            return GeneratedRecord("cart_events", user.user_id, orjson.dumps(cart))
        return GeneratedRecord("transactions", card.card_id, orjson.dumps(txn))


# --------------------------------------------------------------------------------------------
# Helpers for callers
# --------------------------------------------------------------------------------------------


def topic_for(kind: str, settings: Settings) -> str:
    """The configured topic name of a record kind (`transactions`, `feedback`, `cart_events`)."""
    names = {
        "transactions": settings.topic_transactions,
        "feedback": settings.topic_feedback,
        "cart_events": settings.topic_cart_events,
    }
    try:
        return names[kind]
    except KeyError:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {TOPIC_KINDS}") from None


def to_bytes(value: Mapping[str, Any] | bytes) -> bytes:
    """A record value as Kafka bytes: dicts as compact JSON, malformed records as they are."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return orjson.dumps(value)


def write_jsonl(
    path: str | Path,
    records: Iterable[tuple[str, str, Mapping[str, Any] | bytes]],
    settings: Settings,
) -> int:
    """Write `records` as `{"topic","key","value"}` envelope lines that `vigil replay` reads.

    A malformed record's bytes go in as a JSON string (replay feeds a string value's text to the
    decoder as is), so it reaches the detectors exactly as a broken producer would send it.
    Returns the number of lines written.
    """
    written = 0
    with open(path, "wb") as out:
        for kind, key, value in records:
            body: Any = value.decode("utf-8") if isinstance(value, bytes) else value
            out.write(orjson.dumps({"topic": topic_for(kind, settings), "key": key, "value": body}))
            out.write(b"\n")
            written += 1
    return written
