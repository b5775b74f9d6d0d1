"""Kafka plumbing for the benchmark: the broker, topics, bulk produce, committed-offset polling.

Only aiokafka and `app.devtools.kafka` (which imports no Faust), so the benchmark's own
process
stays light while the measured worker runs in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.devtools.kafka import LocalKafka, TopicSpec, create_topics, wait_for_broker

Record = tuple[bytes | None, bytes]  # (key, value)


@dataclass
class Broker:
    """Where the broker is, and (when we started it) how to stop it."""

    bootstrap: str
    version: str
    local: LocalKafka | None = None
    home: Path | None = None
    keep_home: bool = False

    @classmethod
    def start(cls, bootstrap: str | None, keep: bool = False) -> Broker:
        """Use `bootstrap` if given (must answer), else start a fresh broker in a temp dir."""
        if bootstrap:
            bootstrap = bootstrap.removeprefix("kafka://")
            wait_for_broker(bootstrap, timeout=30)
            return cls(bootstrap, "external")
        home = Path(tempfile.mkdtemp(prefix="vigil-bench-kafka-"))
        # A 1 GiB heap: the benchmark writes millions of records; the test default is 512 MiB.
        local = LocalKafka(home, heap=("512m", "1g"), stop_at_exit=True, die_with_parent=True)
        status = local.start(timeout=120, fresh=True)
        assert status.bootstrap is not None
        return cls(status.bootstrap, status.version, local, home, keep)

    @property
    def pid(self) -> int | None:
        """The broker JVM's pid when we started it (for its CPU time)."""
        return self.local.status().pid if self.local is not None else None

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()
            if self.home is not None and not self.keep_home:
                shutil.rmtree(self.home, ignore_errors=True)


async def make_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    await create_topics(bootstrap, [TopicSpec(n, partitions) for n in names], timeout=60)


async def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[Record],
    partitions: int | None = None,
) -> float:
    """Send every record (keyed: the default partitioner places it), wait for all acks.

    Returns the producer's own rate in records/s. `partitions` is unused by the default
    partitioner and only documents intent.
    """
    del partitions
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        await send_all(producer, topic, records)
    finally:
        await producer.stop()
    return len(records) / max(time.perf_counter() - started, 1e-9)


async def send_all(
    producer: AIOKafkaProducer,
    topic: str,
    records: Iterable[Record],
    pinned: Iterable[tuple[int, bytes, bytes]] = (),
) -> None:
    """Send keyed `records` (and `pinned` (partition, key, value)); wait for every ack.

    Acks are awaited every 20 000 records so the pending futures stay bounded.
    """
    pending: list[asyncio.Future[object]] = []
    sends = [(None, key, value) for key, value in records]
    sends += [(partition, key, value) for partition, key, value in pinned]
    for partition, key, value in sends:
        pending.append(await producer.send(topic, value=value, key=key, partition=partition))
        if len(pending) >= 20_000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


@dataclass
class CommitSample:
    t: float  # time.monotonic()
    committed: int  # sum of committed offsets over the topic's partitions


@dataclass
class CommitTrace:
    """Committed offsets of one group on one topic over time, sampled by `watch_commits`."""

    samples: list[CommitSample] = field(default_factory=list)

    def rate(self, start_at: int, target: int) -> tuple[float, float, int]:
        """events/s from the first commit above `start_at` to the first sample at `target`.

        Returns (rate, seconds, events). The events counted are those committed after the
        first commit seen, so start-up (and everything before `start_at`) is excluded.
        """
        first = next((s for s in self.samples if s.committed > start_at), None)
        last = next((s for s in self.samples if s.committed >= target), None)
        if first is None or last is None or last.t <= first.t:
            return 0.0, 0.0, 0
        events = last.committed - first.committed
        seconds = last.t - first.t
        return events / seconds, seconds, events

    def max_stall(self, start_at: int, target: int) -> float:
        """Longest time (s) the committed sum stood still between the first commit and done."""
        longest, since, prev = 0.0, None, None
        for s in self.samples:
            if s.committed <= start_at:
                continue
            if prev is None or s.committed != prev:
                if since is not None:
                    longest = max(longest, s.t - since)
                since, prev = s.t, s.committed
            if s.committed >= target:
                break
        return longest


class OffsetWatcher:
    """Polls a consumer group's committed offsets (OffsetFetch through the admin client)."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.admin: AIOKafkaAdminClient | None = None

    async def __aenter__(self) -> OffsetWatcher:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000)
        await self.admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.admin is not None:
            with contextlib.suppress(Exception):
                await self.admin.close()

    async def committed(self) -> int:
        assert self.admin is not None
        try:
            offsets = await self.admin.list_consumer_group_offsets(self.group, partitions=self.tps)
        except Exception:
            return -1  # the group coordinator may not exist yet
        return sum(max(0, o.offset) for o in offsets.values() if o is not None)

    async def watch(
        self,
        target: int,
        timeout: float,
        trace: CommitTrace | None = None,
        interval: float = 0.05,
        alive: object = None,
    ) -> CommitTrace:
        """Sample until the committed sum reaches `target` (or `timeout` s pass)."""
        trace = trace if trace is not None else CommitTrace()
        deadline = time.monotonic() + timeout
        while True:
            value = await self.committed()
            now = time.monotonic()
            if value >= 0:
                trace.samples.append(CommitSample(now, value))
                if value >= target:
                    return trace
            if now > deadline:
                raise TimeoutError(
                    f"group {self.group}: committed {value} of {target} after {timeout:.0f} s"
                )
            if callable(alive) and not alive():
                raise RuntimeError(f"group {self.group}: the consumer process died")
            await asyncio.sleep(interval)


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> int:
    """Sum of the log-end offsets of a topic (via a throw-away consumer)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        return sum(ends.values())
    finally:
        await consumer.stop()


async def count_records(
    bootstrap: str, topic: str, partitions: int, timeout: float = 300.0
) -> dict[str, float | int | bool]:
    """Read a whole topic with a `read_committed` consumer and count the records it returns.

    Aborted records and transaction markers are not returned. Stops when every partition's
    position reached its last stable offset (read_committed end offset), or after three
    empty polls in a row (a partition ending in a marker may not move the position on).
    `offsets` is the sum of the log-end offsets (records + markers + aborted records).
    """
    from aiokafka import AIOKafkaConsumer

    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    records = 0
    complete = True
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        stable = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
        pending = {tp for tp in tps if stable[tp] > 0}
        idle = 0
        deadline = time.monotonic() + timeout
        while pending and idle < 3:
            if time.monotonic() > deadline:
                complete = False
                break
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=50_000)
            records += sum(len(batch) for batch in batches.values())
            idle = 0 if batches else idle + 1
            for tp in list(pending):
                if await consumer.position(tp) >= stable[tp]:
                    pending.discard(tp)
        short = 0
        for tp in pending:
            short += stable[tp] - await consumer.position(tp)
    finally:
        await consumer.stop()
    return {
        "records": records,
        "offsets": await end_offsets(bootstrap, topic, partitions),
        "stable_offsets": sum(stable.values()),
        "unread_offsets_at_end": short,
        "complete": complete,
        "read_s": round(time.perf_counter() - started, 2),
    }
