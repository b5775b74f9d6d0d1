"""The project's own Kafka broker does what Vigil relies on, as seen through aiokafka 0.14.

Vigil's exactly-once output needs transactions and read_committed readers; its Faust tables
need compacted changelogs; everything needs consumer groups. If the local broker (or the
aiokafka/Kafka version pair) breaks any of these, these tests say so before Vigil's do.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.devtools.kafka import TopicSpec

if TYPE_CHECKING:  # imported for real only as a plugin, so pytest can rewrite its asserts
    from tests.fixtures.kafka import KafkaBroker

# Redundant once tests/conftest.py registers the plugin (pytest loads a plugin only once);
# keeps this file runnable on its own.
pytest_plugins = ["tests.fixtures.kafka"]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

Record = tuple[bytes | None, bytes | None]


def _name(prefix: str) -> str:
    """Topics and groups unique per test: the broker is shared by the whole session."""
    return f"test-{prefix}-{uuid.uuid4().hex[:8]}"


async def _read_to_end(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], timeout: float = 30.0
) -> list[Record]:
    """Everything from the beginning up to the end offsets (the LSO for read_committed)."""
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while True:
        positions = {tp: await consumer.position(tp) for tp in tps}
        if all(positions[tp] >= ends[tp] for tp in tps):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"stuck at {positions}, end offsets {ends}; read {records}")
        batches = await consumer.getmany(*tps, timeout_ms=500)
        for batch in batches.values():
            records.extend((r.key, r.value) for r in batch)


async def test_produce_consume_round_trip_with_consumer_group(kafka_broker: KafkaBroker) -> None:
    topic, group = _name("roundtrip"), _name("group")
    assert await kafka_broker.create_topics([TopicSpec(topic, partitions=2)]) == [topic]
    # Creating it again is not an error.
    assert await kafka_broker.create_topics([TopicSpec(topic, partitions=2)]) == []
    sent = [(f"k{i % 4}".encode(), f"v{i}".encode()) for i in range(40)]

    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in sent]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert {m.partition for m in metas} == {0, 1}

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[Record] = []
    try:
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                received.extend((r.key, r.value) for r in batch)
        await consumer.commit()
        committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()

    assert sorted(received) == sorted(sent)
    by_key: dict[bytes | None, list[bytes | None]] = defaultdict(list)
    for k, v in received:
        by_key[k].append(v)
    for key, values in by_key.items():  # per-key order is what Vigil's state depends on
        assert values == [v for k, v in sent if k == key]
    # The group's offsets were stored in __consumer_offsets (replication factor 1 works).
    assert sum(o or 0 for o in committed.values()) == len(sent)


async def test_transactions_read_committed_sees_only_committed(kafka_broker: KafkaBroker) -> None:
    topic = _name("txn")
    await kafka_broker.create_topics([topic])
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap,
        transactional_id=_name("txn-id"),
        enable_idempotence=True,
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(3):
                await producer.send(topic, key=b"k", value=f"committed-{i}".encode())
        await producer.begin_transaction()
        for i in range(3):
            await producer.send(topic, key=b"k", value=f"aborted-{i}".encode())
        await producer.abort_transaction()
        async with producer.transaction():  # a commit after the abort: readers skip the middle
            await producer.send(topic, key=b"k", value=b"committed-3")
    finally:
        await producer.stop()

    tp = TopicPartition(topic, 0)

    async def read(isolation_level: str) -> list[bytes | None]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_broker.bootstrap,
            isolation_level=isolation_level,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            return [v for _, v in await _read_to_end(consumer, [tp])]
        finally:
            await consumer.stop()

    committed = [f"committed-{i}".encode() for i in range(4)]
    assert await read("read_committed") == committed
    # The aborted records really were written: a read_uncommitted reader sees them.
    uncommitted = await read("read_uncommitted")
    assert [v for v in uncommitted if v and v.startswith(b"aborted-")] == [
        f"aborted-{i}".encode() for i in range(3)
    ]
    assert len(uncommitted) == 7


async def test_compacted_topic_drops_superseded_values(kafka_broker: KafkaBroker) -> None:
    topic = _name("compact")
    config = {
        "cleanup.policy": "compact",
        "segment.ms": "100",  # the active segment is never cleaned: roll often
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "100",
    }
    await kafka_broker.create_topics([TopicSpec(topic, partitions=1, config=config)])

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict(config))]
        )
    finally:
        await admin.close()
    read_back = {entry[0]: entry[1] for entry in response.resources[0][4]}
    assert read_back == config

    keys = [b"a", b"b", b"c"]
    rounds = 5
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    await producer.start()
    await consumer.start()
    consumer.assign([tp])
    try:
        for r in range(rounds):  # each round lands in a later segment than the one before
            for key in keys:
                await producer.send_and_wait(topic, key=key, value=f"{key.decode()}-{r}".encode())
            await asyncio.sleep(0.15)
        latest = {key: f"{key.decode()}-{rounds - 1}".encode() for key in keys}

        seen: dict[bytes | None, list[bytes | None]] = {}
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            # Appends are what roll segments: keep writing so the rounds above become cleanable.
            await producer.send_and_wait(topic, key=b"tick", value=b"tick")
            seen = defaultdict(list)
            for k, v in await _read_to_end(consumer, [tp]):
                seen[k].append(v)
            if all(seen[key] == [latest[key]] for key in keys):
                break
            await asyncio.sleep(0.3)
    finally:
        await consumer.stop()
        await producer.stop()

    assert {key: seen.get(key) for key in keys} == {key: [latest[key]] for key in keys}, (
        "the log cleaner did not compact superseded values away within 45 s"
    )
