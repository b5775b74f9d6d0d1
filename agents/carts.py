"""Cart events (and clock ticks) in, abandoned and recovered carts out.

Thin glue around `app.cart.engine.CartEngine`, one engine per assigned partition, whose store
is the RocksDB-backed `carts` table: the very engine `vigil replay` runs, fed the same order.
The wall clock advances quiet partitions through ticks: every worker sends, every
`cart_tick_interval_s`, a tick record to each cart partition it owns on an internal topic
co-partitioned with `cart-events`. The tick is consumed by this same agent, so timers fire
inside the partition's stream (and Kafka transaction), never from a side task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from time import perf_counter
from typing import Any

from faust.types import TP, Message, StreamT

from agents import loop
from app.cart.engine import CartEngine
from app.cart.machine import CartLimitError, CartOutput
from app.cart.state import CartState, CartStateError
from app.contract.intake import CART_EVENTS, Rejected, failure
from app.contract.timeutil import now_ms, parse_ts
from app.runtime.faust_app import TICKS_TOPIC_SUFFIX, internal_topic
from app.runtime.service import app, metrics, settings, topics, transactions
from app.runtime.transactions import FAUST_KEY_PREFIX, PartitionTransaction
from tables.carts import cart_clocks, carts

log = logging.getLogger(__name__)

TICKS = internal_topic(settings, TICKS_TOPIC_SUFFIX)
TOPIC = settings.topic_cart_events
CARTS = transactions.table(carts)
CLOCKS = transactions.table(cart_clocks)


class TableCartStore:
    """`CartStore` over one partition of the `carts` table, through its transaction.

    The transaction is looked up on every call: after a rebalance the partition has a new one.
    """

    def __init__(self, partition: int) -> None:
        self.partition = partition

    def _txn(self) -> PartitionTransaction:
        return transactions.for_source(TOPIC, self.partition)

    def get(self, user_id: str) -> CartState | None:
        raw = self._txn().get(CARTS, user_id.encode())
        return CartState.from_bytes(raw) if raw is not None else None

    def set(self, user_id: str, state: CartState) -> None:
        self._txn().put(CARTS, user_id.encode(), state.to_bytes())

    def delete(self, user_id: str) -> None:
        self._txn().delete(CARTS, user_id.encode())


def _stored_states(partition: int) -> Iterator[tuple[str, CartState]]:
    """Every cart state of one partition (committed and staged), read once per rebuild.

    Skips Faust's own bookkeeping key (the changelog offset it keeps in each partition's DB)
    and, loudly, any value that does not read as a cart state.
    """
    for key, value in transactions.for_source(TOPIC, partition).items(CARTS):
        if key.startswith(FAUST_KEY_PREFIX):
            continue
        try:
            yield key.decode(), CartState.from_bytes(value)
        except (CartStateError, UnicodeDecodeError) as exc:
            log.error(
                "cart partition %d: unreadable state for key %r skipped: %s", partition, key, exc
            )


class CartPartitions:
    """One engine per assigned partition, rebuilt from the tables on first use after assignment.

    Rebuilding scans the partition's carts once (the timers live in the states); after that,
    firing costs only the timers that are due. An engine is also rebuilt after a handler
    failed (its in-memory timers may have moved with the writes that were rolled back).
    """

    def __init__(self) -> None:
        self.engines: dict[int, CartEngine] = {}
        self.config = settings.cart_config()

    def engine(self, partition: int) -> CartEngine:
        engine = self.engines.get(partition)
        if engine is None:
            engine = CartEngine(self.config, TableCartStore(partition), wall_clock=now_ms)
            engine.restore(_stored_states(partition))
            txn = transactions.for_source(TOPIC, partition)
            highest = txn.get(CLOCKS, str(partition).encode())
            if highest is not None:
                engine.clock.observe(int(highest))
            self.engines[partition] = engine
            log.info("cart partition %d: %d timers restored", partition, engine.pending_timers)
        return engine

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.engines.pop(partition, None)

    @property
    def pending_timers(self) -> int:
        return sum(engine.pending_timers for engine in self.engines.values())


partitions = CartPartitions()


def _emit(txn: PartitionTransaction, fired: list[CartOutput], partition: int) -> None:
    for out in fired:
        if out.kind == "cart_abandoned":
            loop.send_json(txn, topics.cart_abandoned, out.key, out.value, partition)
            deadline = out.value["abandoned_at"]
        else:
            loop.send_json(txn, topics.cart_recovered, out.key, out.value, partition)
            deadline = out.value["recovered_ts"]
        metrics.alert(out.kind, (), _latency_s(out.value["detected_ts"], deadline))


def _latency_s(detected: str, event: str) -> float:
    return (parse_ts(detected) - parse_ts(event)) / 1000


@app.agent(topics.cart_input, name="vigil-carts")
async def track_carts(stream: StreamT) -> None:
    """Apply each cart event to its user's cart; fire due deadlines on events and ticks."""
    await loop.run(stream, _handle, on_rollback=lambda p: partitions.forget({p}))


def _handle(txn: PartitionTransaction, message: Message) -> None:
    partition = message.partition
    engine = partitions.engine(partition)
    if message.topic == TICKS:
        _emit(txn, engine.tick(), partition)
        _observe_clock(engine, partition)
        return
    started = perf_counter()
    cart_event = CART_EVENTS(message.value, message.key)
    if isinstance(cart_event, Rejected):
        loop.reject(txn, message, cart_event)
        return
    before = engine.clock.highest_ms
    try:
        fired = engine.process(cart_event)
    except CartLimitError as exc:  # raised before anything changed: no rollback, no rebuild
        loop.reject(txn, message, failure(exc))
        return
    if engine.clock.highest_ms != before:
        clock = str(engine.clock.highest_ms).encode()
        txn.put(CLOCKS, str(partition).encode(), clock)
    _emit(txn, fired, partition)
    metrics.event_in(TOPIC, "ok")
    metrics.observe_processing(TOPIC, perf_counter() - started)
    _observe_clock(engine, partition)


def _observe_clock(engine: CartEngine, partition: int) -> None:
    highest = engine.clock.highest_ms
    if highest is not None:
        metrics.set_clock_lag(partition, (now_ms() - highest + engine.cfg.lateness_ms) / 1000)
    metrics.set_pending_timers(partitions.pending_timers)


@app.timer(interval=settings.cart_tick_interval_s)
async def send_ticks() -> None:
    """Advance every owned cart partition's clock with the wall clock (quiet streams fire)."""
    if app.rebalancing:
        return
    cart_topic = settings.topic_cart_events
    owned = [tp.partition for tp in app.consumer.assignment() if tp.topic == cart_topic]
    if not owned:
        return
    value = str(now_ms()).encode()
    producer: Any = app.producer
    for partition in owned:
        # Not transactional on purpose: a tick carries no state, and a tick inside a
        # transaction would stay invisible until that partition's next commit.
        await producer.send(TICKS, None, value, partition, None, None)


@app.on_partitions_revoked.connect
async def _on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
    partitions.forget({tp.partition for tp in revoked if tp.topic == settings.topic_cart_events})
