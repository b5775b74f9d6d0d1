"""Pre-loading a table straight into its changelog, with Vigil's own state code.

A worker on this 2-core machine processes well under a thousand new keys per second, so
pre-loading 1 M cards or carts through it would take longer than the rest of the benchmark
together. Instead, `--preload changelog` (the default) runs the very code the worker runs
(`app.contract.intake` decoding, `FraudDetector.process`, `CartEngine.process`: the `vigil replay`
path) in the benchmark process and writes each resulting state, as the worker would write it
(raw key bytes, `State.to_bytes()` value: the tables are `key_type=bytes, value_type=bytes`),
to the table's changelog topic `<app_id>-<table>-changelog`. The worker then recovers that
state on start-up, exactly as after a restart. `--preload worker` sends the same events
through the worker instead (slow; its rate is reported too).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from aiokafka import AIOKafkaProducer

from app.devtools.kafka import TopicSpec, create_topics
from bench.kafka import Record, send_all


class _NoLabels:
    """A `PlaceLookup` with no fraud labels (the pre-load has no feedback)."""

    def fraud_label_times(self, place: str) -> Collection[int]:
        return ()


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


def card_states(records: Sequence[Record], now_ms: int) -> list[Record]:
    """(card_id, CardState bytes) after each card's transactions, via the live detector."""
    from app.contract.intake import TRANSACTIONS, Rejected
    from app.detect.fraud import FraudDetector
    from app.detect.state import CardState
    from app.settings import Settings

    detector = FraudDetector(Settings().fraud_config())
    labels = _NoLabels()
    states: dict[bytes, CardState] = {}
    for key, value in records:
        txn = TRANSACTIONS(value, key)
        if isinstance(txn, Rejected):
            raise ValueError(f"pre-load record rejected: {txn.error}")
        assert key is not None
        result = detector.process(txn, states.get(key), labels, now_ms)
        states[key] = result.state
    return [(k, s.to_bytes()) for k, s in states.items()]


def cart_states(records: Sequence[Record], timeout_s: float) -> tuple[list[Record], int]:
    """(user_id, CartState bytes) after the events, via the live cart engine; + highest ts."""
    from app.cart.engine import CartEngine
    from app.cart.store import DictCartStore
    from app.contract.intake import CART_EVENTS, Rejected
    from app.settings import Settings

    store = DictCartStore()
    engine = CartEngine(Settings(cart_timeout_s=timeout_s).cart_config(), store)
    for key, value in records:
        event = CART_EVENTS(value, key)
        if isinstance(event, Rejected):
            raise ValueError(f"pre-load record rejected: {event.error}")
        if engine.process(event):
            raise ValueError("the pre-load fired a cart output: raise the cart timeout")
    highest = engine.clock.highest_ms or 0
    return [(user.encode(), state.to_bytes()) for user, state in store.items()], highest


async def write_changelog(
    bootstrap: str,
    topic: str,
    partitions: int,
    records: Sequence[Record],
    pinned: Sequence[tuple[int, bytes, bytes]] = (),
) -> float:
    """Create the compacted changelog topic and fill it; returns seconds taken.

    `records` go to the partition their key hashes to (where the worker's agent, which writes
    into the input record's partition, puts them too); `pinned` are (partition, key, value).
    """
    started = time.perf_counter()
    await create_topics(
        bootstrap,
        [TopicSpec(topic, partitions, {"cleanup.policy": "compact"})],
        timeout=60,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        await send_all(producer, topic, records, pinned)
    finally:
        await producer.stop()
    return time.perf_counter() - started
