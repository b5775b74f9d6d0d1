"""A labelled card stream of several weeks, for learning from feedback (`vigil replay` +
`vigil evaluate`): cards with habits, terminals, fraud scenarios, feedback days late.

Why its own world and not `TrafficGenerator`: that one makes minutes of traffic dense with the
rules' textbook episodes; a model that learns from feedback needs weeks of ordinary life in
which fraud is rare (~1 %), varied and only known days later. The shape follows the simulated
dataset of Le Borgne et al.'s fraud-detection handbook (customers and terminals on a map,
per-card spending level and rhythm, compromised terminals and compromised cards) with what a
real stream adds: cities and coordinates, weekends, online merchants, card testing, fraud
amounts that are *inflated* rather than one fixed bar, feedback for only most frauds and after
a delay that varies, a few `legit` labels from disputes that turned out fine.

Scenarios (daily rates are parameters; every draw comes from one `random.Random(seed)`):
- `terminal`: a skimmed terminal, for 2-5 weeks: each transaction there is fraud with
  probability 0.8 (the cloned card is used on the spot), at the card's usual amounts;
- `card`: a compromised card, for 1-3 weeks: a fraudster adds 0-3 purchases a day, online or
  in another city, at 2-8 times the card's usual amount;
- `takeover`: one purchase at 6-30 times the card's usual amount, online;
- `testing`: 4-9 purchases of at most 2.00 within minutes, then one large one.

Run: `python -m app.devtools.generate.labelled --out DIR [--weeks 6] [--cards 3000] [--seed 7]`
writes `DIR/stream.jsonl` (envelopes in event-time order: transactions and feedback) and
`DIR/labels.jsonl` (every transaction: txn_id, card_id, ts, fraud 0/1, scenario).
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from app.contract.timeutil import format_ts

DAY = 86_400_000
HOUR = 3_600_000
START_MS = 1_788_220_800_000  # 2026-09-01T00:00:00Z, a Tuesday
CITIES = (  # name, lat, lon, share of cards
    ("Paris", 48.857, 2.352, 0.3),
    ("Lyon", 45.764, 4.836, 0.15),
    ("Berlin", 52.520, 13.405, 0.25),
    ("Madrid", 40.417, -3.704, 0.2),
    ("Milan", 45.464, 9.190, 0.1),
)


@dataclass(slots=True)
class Card:
    card_id: str
    city: int
    lat: float
    lon: float
    level: float  # median amount of a purchase
    rate: float  # purchases per day
    peak_hour: float
    spread_h: float
    online: float  # share of purchases online
    terminals: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Terminal:
    terminal_id: str
    merchant_id: str
    city: int
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Rates:
    """Fraud scenarios started per day, and the feedback's behaviour."""

    terminals_per_day: float = 1.0
    cards_per_day: float = 1.5
    takeovers_per_day: float = 4.0
    testing_per_day: float = 1.0
    reported: float = 0.9  # share of frauds that ever get a fraud label
    legit_labels: float = 0.004  # share of legit transactions that get a legit label
    delay_days: tuple[float, float] = (2.0, 12.0)  # feedback delay, uniform


class LabelledStream:
    """The world (cards, terminals, online merchants) and the stream it produces."""

    def __init__(self, seed: int = 7, cards: int = 3000, terminals: int = 3000) -> None:
        self.rng = rng = random.Random(seed)
        weights = [c[3] for c in CITIES]
        self.terminals: list[Terminal] = []
        for i in range(terminals):
            city = rng.choices(range(len(CITIES)), weights)[0]
            lat, lon = self._near(city, 0.08)
            merchant = f"m-{i // 3:05d}"  # a shop has up to three terminals
            self.terminals.append(Terminal(f"pos-{i:05d}", merchant, city, lat, lon))
        self.by_city: list[list[int]] = [[] for _ in CITIES]
        for i, t in enumerate(self.terminals):
            self.by_city[t.city].append(i)
        self.online = [f"web-{i:03d}" for i in range(150)]
        self.cards: list[Card] = []
        for i in range(cards):
            city = rng.choices(range(len(CITIES)), weights)[0]
            lat, lon = self._near(city, 0.05)
            card = Card(
                f"tok_{i:05d}",
                city,
                lat,
                lon,
                level=math.exp(rng.gauss(math.log(30.0), 0.7)),
                rate=rng.gammavariate(2.0, 0.8),
                peak_hour=rng.gauss(14.0, 2.5),
                spread_h=rng.uniform(1.5, 4.0),
                online=rng.uniform(0.05, 0.35),
            )
            near = sorted(
                self.by_city[city],
                key=lambda j: (
                    (self.terminals[j].lat - lat) ** 2 + (self.terminals[j].lon - lon) ** 2
                ),
            )[:60]
            card.terminals = rng.sample(near, min(12, len(near)))
            self.cards.append(card)
        self.n = 0

    def _near(self, city: int, spread: float) -> tuple[float, float]:
        _, lat, lon, _ = CITIES[city]
        return round(lat + self.rng.gauss(0, spread), 4), round(lon + self.rng.gauss(0, spread), 4)

    def _txn(
        self, card: Card, ts: int, amount: float, terminal: int | None, online: str | None = None
    ) -> dict[str, Any]:
        self.n += 1
        value: dict[str, Any] = {
            "txn_id": f"tx-{self.n:08d}",
            "card_id": card.card_id,
            "amount": round(max(0.01, amount), 2),
            "currency": "EUR",
            "ts": format_ts(ts),
        }
        if terminal is not None:
            t = self.terminals[terminal]
            value.update(merchant_id=t.merchant_id, terminal_id=t.terminal_id, lat=t.lat, lon=t.lon)
            value["channel"] = "pos"
        else:
            value.update(merchant_id=online or self.rng.choice(self.online), channel="online")
        return value

    def _amount(self, card: Card, times: float = 1.0) -> float:
        return card.level * times * math.exp(self.rng.gauss(0.0, 0.6))

    def _time(self, card: Card, day: int) -> int:
        hour = self.rng.gauss(card.peak_hour, card.spread_h) % 24.0
        return START_MS + day * DAY + int(hour * HOUR) + self.rng.randrange(HOUR // 60)

    def transactions(self, days: int, rates: Rates) -> Iterator[tuple[dict[str, Any], str]]:
        """(transaction value, scenario or "") in no particular order; frauds marked."""
        rng = self.rng
        skimmed: dict[int, int] = {}  # terminal -> last day compromised
        stolen: dict[int, int] = {}  # card -> last day compromised
        for day in range(days):
            for _ in range(_poisson(rng, rates.terminals_per_day)):
                skimmed[rng.randrange(len(self.terminals))] = day + rng.randint(14, 35)
            for _ in range(_poisson(rng, rates.cards_per_day)):
                stolen[rng.randrange(len(self.cards))] = day + rng.randint(7, 21)
            weekend = (day + 1) % 7 >= 5  # START_MS is a Tuesday
            for ci, card in enumerate(self.cards):
                for _ in range(_poisson(rng, card.rate * (1.3 if weekend else 1.0))):
                    ts = self._time(card, day)
                    if rng.random() < card.online:
                        yield self._txn(card, ts, self._amount(card, 0.8), None), ""
                        continue
                    terminal = rng.choice(card.terminals)
                    fraud = skimmed.get(terminal, -1) >= day and rng.random() < 0.8
                    value = self._txn(card, ts, self._amount(card), terminal)
                    yield value, "terminal" if fraud else ""
                if stolen.get(ci, -1) >= day:
                    yield from self._stolen(card, day)
            for _ in range(_poisson(rng, rates.takeovers_per_day)):
                card = rng.choice(self.cards)
                ts = self._time(card, day)
                yield self._txn(card, ts, self._amount(card, rng.uniform(6, 30)), None), "takeover"
            for _ in range(_poisson(rng, rates.testing_per_day)):
                yield from self._testing(rng.choice(self.cards), day)

    def _stolen(self, card: Card, day: int) -> Iterator[tuple[dict[str, Any], str]]:
        rng = self.rng
        for _ in range(rng.randint(0, 3)):
            ts = START_MS + day * DAY + rng.randrange(DAY)
            amount = self._amount(card, rng.uniform(2, 8))
            if rng.random() < 0.5:
                yield self._txn(card, ts, amount, None), "card"
            else:
                other = rng.choice([c for c in range(len(CITIES)) if c != card.city])
                yield self._txn(card, ts, amount, rng.choice(self.by_city[other])), "card"

    def _testing(self, card: Card, day: int) -> Iterator[tuple[dict[str, Any], str]]:
        rng = self.rng
        ts = START_MS + day * DAY + rng.randrange(DAY - 2 * HOUR)
        shop = rng.choice(self.online)
        for _ in range(rng.randint(4, 9)):
            ts += rng.randint(10_000, 90_000)
            yield self._txn(card, ts, rng.uniform(0.5, 2.0), None, shop), "testing"
        ts += rng.randint(5 * 60_000, 60 * 60_000)
        yield self._txn(card, ts, self._amount(card, rng.uniform(5, 20)), None), "testing"


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _ms(ts: str) -> int:
    from app.contract.timeutil import parse_ts

    return parse_ts(ts)


def build(
    *, weeks: int = 6, cards: int = 3000, seed: int = 7, rates: Rates | None = None
) -> tuple[list[tuple[int, int, dict[str, Any]]], list[dict[str, Any]], dict[str, int]]:
    """The stream as (ts, order, envelope) in event-time order, the labels, and counts.

    Without `rates`, the default scenario rates (set for 3 000 cards) scale with `cards`, so a
    small world keeps about the same share of fraud.
    """
    if rates is None:
        f = cards / 3000
        base = Rates()
        rates = Rates(
            terminals_per_day=base.terminals_per_day * f,
            cards_per_day=base.cards_per_day * f,
            takeovers_per_day=base.takeovers_per_day * f,
            testing_per_day=base.testing_per_day * f,
        )
    world = LabelledStream(seed, cards, terminals=cards)
    rng = world.rng
    events: list[tuple[int, int, dict[str, Any]]] = []
    labels: list[tuple[int, str, dict[str, Any]]] = []
    counts = {"transactions": 0, "frauds": 0, "fraud_labels": 0, "legit_labels": 0}
    for value, scenario in world.transactions(weeks * 7, rates):
        ts = _ms(value["ts"])
        txn_id = value["txn_id"]
        counts["transactions"] += 1
        events.append((ts, 0, {"topic": "transactions", "key": value["card_id"], "value": value}))
        fraud = 1 if scenario else 0
        line = {
            "txn_id": txn_id,
            "card_id": value["card_id"],
            "ts": value["ts"],
            "fraud": fraud,
            "scenario": scenario,
        }
        labels.append((ts, txn_id, line))
        counts["frauds"] += fraud
        label = None
        if fraud and rng.random() < rates.reported:
            label = "fraud"
        elif not fraud and rng.random() < rates.legit_labels:
            label = "legit"
        if label is None:
            continue
        at = ts + int(rng.uniform(*rates.delay_days) * DAY)
        feedback = {
            "txn_id": txn_id,
            "label": label,
            "ts": format_ts(at),
            "card_id": value["card_id"],
            "merchant_id": value["merchant_id"],
        }
        if "terminal_id" in value:
            feedback["terminal_id"] = value["terminal_id"]
        events.append((at, 1, {"topic": "fraud-feedback", "key": txn_id, "value": feedback}))
        counts[f"{label}_labels"] += 1
    events.sort(key=lambda e: (e[0], e[1]))
    labels.sort(key=lambda e: (e[0], e[1]))
    return events, [line for _, _, line in labels], counts


def generate(
    out_dir: str | Path,
    *,
    weeks: int = 6,
    cards: int = 3000,
    seed: int = 7,
    rates: Rates | None = None,
) -> dict[str, int]:
    """Write `stream.jsonl` and `labels.jsonl` to `out_dir`; return counts."""
    events, labels, counts = build(weeks=weeks, cards=cards, seed=seed, rates=rates)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stream.jsonl", "wb") as fh:
        fh.writelines(orjson.dumps(e) + b"\n" for _, _, e in events)
    with open(out / "labels.jsonl", "wb") as fh:
        fh.writelines(orjson.dumps(line) + b"\n" for line in labels)
    return counts


def main(argv: list[str] | None = None) -> int:
    """The module's command line (see the docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--weeks", type=int, default=6)
    p.add_argument("--cards", type=int, default=3000)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    for name, n in generate(args.out, weeks=args.weeks, cards=args.cards, seed=args.seed).items():
        print(f"{name}: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
