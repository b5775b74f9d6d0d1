"""The chaos harness's workload: seeded input over all three topics, replay-comparable.

`workload(seed, steps, partitions, cleared)` yields `Input` records to produce in order and
`Gate`s (from here on, watch the workers apply the fraud labels produced so far). It is
generated as it is produced: the places a gate's labels compromise are used from the first
record generated after `cleared(batch)` says so; the producer never waits for a gate, and
the workers get a steady stream through the chaos (longer when the first gate is late). Everything else is fixed by the seed (with
`cleared` always true, the same seed gives the same records).

Why live output can equal `vigil replay`'s whatever the timing (replay reads one file in order,
live workers read each partition in offset order, with restarts and rebalances in between):

* Fraud rules are per card in arrival order: one producer, idempotent, sends each card's
  transactions in file order, so each partition's order is the file's order.
* `compromised_terminal` reads labels that every worker follows from `<app_id>-fraud-labels`
  with some delay, so cross-topic timing would matter. It does not here: labels go out in
  `BATCHES` batches (making terminals and a merchant compromised, some flipped), each followed
  by one fresh `legit` label to every feedback partition (a "marker") and a `Gate`;
  transactions use a batch's places only once its gate is cleared, and the next batch starts
  only then. The follower applies a partition in order, and no later label exists yet, so a
  worker that counts every distinct labelled txn_id so far (metric
  `vigil_table_keys{table="fraud-labels"}` >= `Gate.labels`) has applied every label of the
  batch, flips included. A gate is cleared once some worker shows them (so they are committed)
  and every worker started before that moment shows them too: a worker started later holds
  transactions until it has caught up with the labels committed when it started.
* Cart timers fire by a clock that is event time (per partition live, global in replay) pushed
  by the wall clock (live only). Event times here are in the year 2150, so the wall clock never
  pushes it and ticks (`VIGIL_CART_TICK_INTERVAL_S`) fire nothing; cart event times never
  decrease in file order, so a user's timer due before their next event fires before it both
  live and in replay (earlier, on another user's event, or when that next event is applied,
  which abandons first), with the same output. At the end one `view` per cart partition at a
  time past every deadline (`closing`) lets each live partition fire what replay's end of input
  fires.
* Dead letters carry the source partition and offset: the producer records them from the
  broker's acks and the replay input carries them, so live and replay dead letters compare by
  (source_topic, partition, offset), every field but `ts`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from app.contract.intake import FEEDBACK, Rejected
from app.contract.timeutil import format_ts

BASE = 5_680_281_600_000  # 2150-01-01T00:00:00Z: event time far ahead of any wall clock
S = 1000
MIN = 60 * S
DAY = 86_400 * S
STEP_MS = S  # the cart clock advances one second of event time per workload step
CART_TIMEOUT_S = 120  # VIGIL_CART_TIMEOUT_S for the chaos workers and replay
BATCHES = 3  # batches of fraud labels, each behind its own gate
CITIES = [
    (48.857, 2.352),
    (51.507, -0.128),
    (40.713, -74.006),
    (35.690, 139.692),
    (-33.869, 151.209),
    (52.520, 13.405),
    (41.903, 12.496),
    (19.433, -99.133),
]
PRODUCTS = {f"sku-{i}": round(3 + i * 7.35, 2) for i in range(30)}


@dataclass(frozen=True, slots=True)
class Input:
    """One record to produce: topic kind (tests.fixtures.worker.INPUTS), key, value bytes."""

    kind: str
    key: str | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Gate:
    """From here: watch for every worker to apply `labels` distinct fraud-label txn ids."""

    batch: int
    labels: int


Item = Input | Gate


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives `key`."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def key_for(prefix: str, partition: int, partitions: int) -> str:
    """The first `prefix-N` key that lands in `partition`."""
    n = 0
    while partition_of(f"{prefix}-{n}", partitions) != partition:
        n += 1
    return f"{prefix}-{n}"


@dataclass
class _Card:
    card_id: str
    ts: int
    home: tuple[float, float]
    history: list[Input] = field(default_factory=list)


@dataclass
class _User:
    user_id: str
    state: str = "idle"  # idle | cart | silent (the generator's guess, not the truth)
    items: set[str] = field(default_factory=set)
    session: int = 0


class _Builder:
    def __init__(
        self, seed: int, steps: int, partitions: int, cleared: Callable[[int], bool]
    ) -> None:
        self.rng = random.Random(seed)
        self.cleared = cleared
        self.steps = steps
        self.partitions = partitions
        self.items: list[Item] = []
        self.clock = BASE  # event time of cart events: never decreases in file order
        self.cards = [
            _Card(f"card-{i:03d}", BASE + self.rng.randrange(3600) * S, self.rng.choice(CITIES))
            for i in range(60)
        ]
        self.users = [_User(f"u-{i:03d}") for i in range(40)]
        self.due: list[tuple[int, int]] = [(BASE + i * 7 * S, i) for i in range(len(self.users))]
        self.hot: list[tuple[str, str]] = []  # (kind, place) labelled in an earlier batch
        self.labelled: set[str] = set()
        self.n = 0

    # --- output ------------------------------------------------------------------------------

    def emit(self, kind: str, key: str | None, value: dict[str, Any] | bytes) -> Input:
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        item = Input(kind, key, raw)
        self.items.append(item)
        if kind == "feedback" and not isinstance(FEEDBACK(raw, key), Rejected):
            assert key is not None
            self.labelled.add(key)
        return item

    def uid(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    # --- build -------------------------------------------------------------------------------

    def build(self) -> Iterator[Item]:
        span = max(20, self.steps // 15)  # steps over which one batch of labels goes out
        batch, queue, gated = 0, [], False
        # On a loaded machine the first gate may not clear within the planned steps (labels
        # lag behind a SIGKILLed worker's open transaction): the traffic then goes on, up to
        # twice as long, until it clears, and a tenth more after, so that every run still
        # exercises the label-based rule. With `cleared` always true this never happens.
        step, limit = 0, self.steps
        while step < limit:
            if not queue and not gated and batch < BATCHES:  # the previous gate is cleared
                labels = self.batch_labels(batch)  # in their own order: flips stay ordered
                slots = sorted(self.rng.sample(range(step, step + span), len(labels)))
                queue = list(zip(slots, labels, strict=True))
            while queue and queue[0][0] <= step:
                key, value = queue.pop(0)[1]
                self.emit("feedback", key, value)
                if not queue:  # the batch is out: one marker per partition, then its gate
                    for p in range(self.partitions):
                        marker = key_for(f"mark-{batch}", p, self.partitions)
                        value = self.label(marker, "legit", "terminal", "pos-m")
                        self.emit("feedback", marker, value)
                    self.items.append(Gate(batch, len(self.labelled)))
                    gated = True
            yield from self.flush()  # the gate is open before `cleared` is asked
            if gated and self.cleared(batch):
                self.hot.extend(self.batch_places(batch))
                batch, gated = batch + 1, False
                if step >= self.steps:  # the first gate cleared late: a tail that uses it
                    limit = step + max(200, self.steps // 10)
            self.step()
            yield from self.flush()
            step += 1
            if step == limit and batch == 0 and limit < 2 * self.steps:
                limit += 1
        self.closing()
        yield from self.flush()

    def flush(self) -> Iterator[Item]:
        items, self.items = self.items, []
        return iter(items)

    def step(self) -> None:
        self.clock += STEP_MS
        r = self.rng.random()
        if r < 0.01:
            self.malformed()
        elif r < 0.57:
            self.card_action(self.rng.choice(self.cards))
        else:
            self.cart_action()

    # --- fraud feedback ----------------------------------------------------------------------

    def label(self, txn_id: str, label: str, kind: str, place: str) -> dict[str, Any]:
        field_name = "terminal_id" if kind == "terminal" else "merchant_id"
        ts = BASE - DAY + self.rng.randrange(3600) * S
        return {"txn_id": txn_id, "label": label, field_name: place, "ts": format_ts(ts)}

    @staticmethod
    def batch_places(batch: int) -> list[tuple[str, str]]:
        return [("terminal", f"pos-k{batch}{c}") for c in "abcde"] + [("merchant", f"m-k{batch}")]

    def batch_labels(self, batch: int) -> list[tuple[str, dict[str, Any]]]:
        """Fraud labels that make pos-k{p}a, b, e and m-k{p} compromised; c and d stay below."""
        out: list[tuple[str, dict[str, Any]]] = []

        def add(place: str, *labels: str, kind: str = "terminal") -> None:
            txn_id = f"fb-{batch}-{len(out)}"
            for label in labels:  # several labels: a flip, only the last counts
                out.append((txn_id, self.label(txn_id, label, kind, place)))

        for _ in range(self.rng.choice([2, 3])):
            add(f"pos-k{batch}a", "fraud")
        add(f"pos-k{batch}b", "fraud")
        add(f"pos-k{batch}b", "fraud")
        add(f"pos-k{batch}c", "fraud")  # one label: not enough
        add(f"pos-k{batch}d", "fraud")
        add(f"pos-k{batch}d", "fraud", "legit")  # flipped off: not enough
        add(f"pos-k{batch}e", "fraud")
        add(f"pos-k{batch}e", "legit", "fraud")  # flipped on: compromised
        add(f"m-k{batch}", "fraud", kind="merchant")
        add(f"m-k{batch}", "fraud", kind="merchant")
        add(f"pos-c{self.rng.randrange(20)}", "legit")
        return out

    # --- transactions ------------------------------------------------------------------------

    def txn(self, card: _Card, amount: float | str, gap_ms: int, **extra: Any) -> None:
        card.ts += gap_ms
        value: dict[str, Any] = {
            "txn_id": self.uid("t"),
            "card_id": card.card_id,
            "amount": amount,
            "currency": "EUR",
            "merchant_id": f"m-c{self.rng.randrange(10)}",
            "ts": format_ts(card.ts) if self.rng.random() < 0.8 else card.ts,
        }
        hot = self.rng.choice(self.hot) if self.hot and self.rng.random() < 0.15 else None
        if hot is not None and hot[0] == "merchant":
            value["merchant_id"] = hot[1]  # no terminal: the merchant is the place
        elif hot is not None:
            value["terminal_id"] = hot[1]
        elif self.rng.random() < 0.8:
            value["terminal_id"] = f"pos-c{self.rng.randrange(20)}"
        if "lat" not in extra and self.rng.random() < 0.7:
            lat, lon = card.home
            extra.update(lat=lat + self.rng.uniform(-0.05, 0.05), lon=lon)
        value.update(extra)
        card.history.append(self.emit("transactions", card.card_id, value))

    def card_action(self, card: _Card) -> None:
        rng = self.rng
        r = rng.random()
        normal = round(rng.lognormvariate(3.2, 0.5), 2)
        if r < 0.06:  # velocity: 7 transactions in about 40 s
            for _ in range(7):
                self.txn(card, round(rng.lognormvariate(3.2, 0.5), 2), rng.randrange(4, 8) * S)
        elif r < 0.11:  # card_testing: small amounts within a few minutes
            for _ in range(rng.choice([5, 6])):
                self.txn(card, f"{rng.uniform(0.01, 2.0):.2f}", rng.randrange(20, 60) * S)
        elif r < 0.17:  # impossible_travel: another city soon after
            card.home = rng.choice([c for c in CITIES if c != card.home])
            self.txn(card, normal, rng.randrange(10, 40) * MIN, lat=card.home[0], lon=card.home[1])
        elif r < 0.20:  # large_amount
            self.txn(card, rng.choice([10000, 15000.5, "12500.00"]), rng.randrange(5, 60) * MIN)
        elif r < 0.24 and len(card.history) >= 5:  # amount_spike after a history
            self.txn(card, round(rng.uniform(400, 900), 2), rng.randrange(5, 60) * MIN)
        elif r < 0.27 and card.history:  # a resent transaction: a duplicate, ignored
            again = card.history[-rng.randrange(1, min(4, len(card.history)) + 1)]
            self.items.append(again)
        else:
            self.txn(card, normal, rng.randrange(1, 30) * MIN)

    # --- carts -------------------------------------------------------------------------------

    def cart(self, user: _User, kind: str, **extra: Any) -> None:
        value = {
            "event_id": self.uid("e"),
            "user_id": user.user_id,
            "session_id": f"s-{user.user_id}-{user.session}",
            "type": kind,
            "ts": format_ts(self.clock) if self.rng.random() < 0.8 else self.clock,
            **extra,
        }
        self.emit("cart_events", user.user_id, value)

    def add(self, user: _User) -> None:
        product = self.rng.choice(list(PRODUCTS))
        user.items.add(product)
        self.cart(
            user,
            "add_to_cart",
            product_id=product,
            price=PRODUCTS[product],
            quantity=self.rng.randrange(1, 4),
            currency="EUR",
        )

    def cart_action(self) -> None:
        """The user due first acts, if one is due; else a passing visitor views a product."""
        rng = self.rng
        if not self.due or self.due[0][0] > self.clock:
            visitor = _User(self.uid("v"))
            self.cart(visitor, "view", product_id=rng.choice(list(PRODUCTS)))
            return
        _, index = heappop(self.due)
        user = self.users[index]
        timeout = CART_TIMEOUT_S * S
        gap = rng.randrange(5, 40) * S  # well within the timeout
        r = rng.random()
        if user.state == "idle":
            user.session += 1
            self.add(user)
            user.state = "cart"
        elif user.state == "cart":
            if r < 0.3:
                self.add(user)
            elif r < 0.42:
                product = rng.choice(sorted(user.items) or list(PRODUCTS))
                user.items.discard(product)
                self.cart(
                    user, "remove_from_cart", product_id=product, quantity=rng.randrange(1, 3)
                )
            elif r < 0.5:
                self.cart(user, "view", product_id=rng.choice(list(PRODUCTS)))
            elif r < 0.58:
                self.cart(user, "begin_checkout")
            elif r < 0.75:
                self.cart(user, "purchase")
                user.state, user.items = "idle", set()
                gap = rng.randrange(60, 600) * S
            else:  # quiet past the deadline: abandoned
                self.cart(user, "view", product_id=rng.choice(list(PRODUCTS)))
                user.state = "silent"
                gap = int(timeout * rng.uniform(1.3, 5))
        else:  # back after an abandonment
            if r < 0.5:
                self.cart(user, "purchase")  # recovers the abandoned cart
                user.state, user.items = "idle", set()
            elif r < 0.8:
                self.add(user)
                user.state = "cart"
            else:
                self.cart(user, "view", product_id=rng.choice(list(PRODUCTS)))
                user.state = "cart"
        heappush(self.due, (self.clock + gap, index))

    def closing(self) -> None:
        """One view per cart partition past every deadline: each partition's clock moves on."""
        end = self.clock + (CART_TIMEOUT_S + 3600) * S
        for p in range(self.partitions):
            user = key_for("close", p, self.partitions)
            value = {"event_id": f"close-{p}", "user_id": user, "type": "view", "ts": end}
            self.emit("cart_events", user, value)

    # --- dead letters ------------------------------------------------------------------------

    def malformed(self) -> None:
        """About 1 % of steps: a record that must go to dead letters, of one of these kinds."""
        rng = self.rng
        card = rng.choice(self.cards).card_id
        user = rng.choice(self.users).user_id
        ts = format_ts(self.clock)
        choices: list[tuple[str, str | None, dict[str, Any] | bytes]] = [
            ("transactions", card, b'{"txn_id": "broken'),
            ("transactions", card, {"txn_id": self.uid("x"), "card_id": card, "amount": "abc",
                                    "currency": "EUR", "merchant_id": "m-1", "ts": ts}),
            ("transactions", "card-wrong-key", {"txn_id": self.uid("x"), "card_id": card,
                                                "amount": 5, "currency": "EUR",
                                                "merchant_id": "m-1", "ts": ts}),
            ("transactions", card, {"txn_id": self.uid("x"), "card_id": card, "amount": 5,
                                    "currency": "euro", "merchant_id": "m-1", "ts": ts}),
            ("transactions", None, {"txn_id": self.uid("x"), "card_id": card, "amount": 5,
                                    "currency": "EUR", "merchant_id": "m-1", "ts": ts}),
            ("feedback", (fid := self.uid("xf")), {"txn_id": fid, "label": "maybe", "ts": ts}),
            ("feedback", (fid := self.uid("xf")), {"txn_id": fid, "label": "fraud"}),
            ("cart_events", user, {"event_id": self.uid("x"), "user_id": user,
                                   "type": "add_to_cart", "product_id": "sku-1", "ts": ts}),
            ("cart_events", user, {"event_id": self.uid("x"), "user_id": user,
                                   "type": "teleport", "ts": ts}),
            ("cart_events", user, {"event_id": self.uid("x"), "user_id": user, "type": "view",
                                   "quantity": 0, "ts": ts}),
            ("cart_events", user, b"[1, 2, 3]"),
        ]  # fmt: skip
        kind, key, value = rng.choice(choices)
        self.emit(kind, key, value)


def workload(
    seed: int, steps: int, partitions: int, cleared: Callable[[int], bool] = lambda _: True
) -> Iterator[Item]:
    """`steps` random steps (about 1.3 records each), `BATCHES` batches of labels among them,
    then the closing views."""
    return _Builder(seed, steps, partitions, cleared).build()
