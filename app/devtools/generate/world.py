"""The world the traffic happens in: cities, merchants and terminals, cards, shoppers, products.

`_World` is the base of the generator's parts (`_Fraud`, `_Carts`, `_Malformed`, then
`TrafficGenerator`): it declares the state they share and the draws they all make (pick a
city, a card, an amount, a random id). Why one object split by concern rather than separate
objects: every draw comes from one `random.Random` in one order, which is what makes a seed
reproduce its records exactly; mixins keep that order while each module has one job.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal

from app.contract.timeutil import format_ts
from app.devtools.generate.records import CartMix, GeneratedRecord, PatternRates


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


class _World:
    """The shared state and the world-building draws of `TrafficGenerator` (see the module)."""

    # Set by `TrafficGenerator.__init__`.
    patterns: PatternRates
    cart_mix: CartMix
    cart_timeout_ms: float
    counts: dict[str, int]  # what was produced, by kind and by pattern/outcome
    _rng: random.Random
    _now: float  # virtual event time of the current slot, in ms
    _queue: list[tuple[float, int, Builder]]
    _seq: int
    _recent_txns: deque[_TxnRef]
    _by_terminal: dict[str, deque[_TxnRef]]
    _terminal_order: list[str]  # terminals in first-seen order (deterministic)
    _compromised: set[str]
    _spike_ready: list[int]  # cards with >= 5 counted transactions
    # Set by `_build_world`.
    _city_cum: list[float]
    _far: list[list[int]]
    _merchants: list[_Merchant]
    _local: list[list[int]]
    _online: list[int]
    _luxury_local: list[list[int]]
    _luxury_online: list[int]
    _cards: list[_Card]
    _card_cum: list[float]
    _users: list[_User]
    _products: list[tuple[str, float]]  # id, price in EUR

    def _hex(self, bits: int) -> str:
        return f"{self._rng.getrandbits(bits):0{bits // 4}x}"

    def _build_world(
        self, n_cards: int, n_users: int, n_merchants: int | None, n_products: int
    ) -> None:
        rng = self._rng
        city_cum = list(accumulate(c.weight for c in _CITIES))
        self._city_cum = city_cum
        self._far = [
            [
                j
                for j, other in enumerate(_CITIES)
                if _haversine_km(city.lat, city.lon, other.lat, other.lon) >= _FAR_KM
            ]
            for city in _CITIES
        ]

        count = n_merchants if n_merchants is not None else max(40, n_cards // 4)
        self._merchants = []
        self._local = [[] for _ in _CITIES]
        self._online = []
        self._luxury_local = [[] for _ in _CITIES]
        self._luxury_online = []
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

        self._cards = []
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

        self._users = [
            _User(f"u-{self._hex(32)}", self._pick_city(), rng.random() < 0.4)
            for _ in range(n_users)
        ]
        self._products = []  # id, price in EUR
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

    # ---- the schedule and the amount model, used by every part -------------------------------

    def _schedule(self, at_ms: float, builder: Builder) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, builder))

    def _amount(self, card: _Card, factor: float = 1.0) -> float:
        # Everyday spending stays below the large-amount threshold in every currency.
        amount = self._rng.lognormvariate(card.mu, card.sigma) * factor
        return round(min(9000.0, max(0.5, amount)), 2)
