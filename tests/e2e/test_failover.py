"""Failover: two workers, one SIGKILLed; how long until the survivor serves its partitions, and
how much of the changelog it reads to do so, with one standby replica and without.

Both workers start (exactly_once, 4 partitions), then `FAILOVER_CARDS` distinct cards per
worker get a transaction each (CI: 3 000; `FAILOVER_CARDS=100000` is the README's figure), and
one probe card per partition gets 5 prior transactions of 10.00. Once every record is
processed and committed (and, with a standby, the survivor's standby copies have stopped
growing), worker A is SIGKILLed and each probe card gets a transaction of 100.00: its
`amount_spike` alert ("over 5 prior transactions") can only come from a worker holding the
card's old state. The takeover time is from the SIGKILL to the last probe alert a
read_committed reader sees (so it includes the group noticing the dead member: the 10 s
session timeout of the tests). The changelog records read at takeover are the survivor's
`bulk restore: N changelog records` lines after the kill (as in test_kill_restart.py).

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from app.devtools import processes
from tests.scenarios import MIN, T0, txn
from tests.waiting import wait_until

#: Distinct cards whose state each worker holds before the kill (the issue asks for 100 000).
CARDS = int(os.environ.get("FAILOVER_CARDS", "3000"))

# The 100 000-card form takes 10-25 min on 2 shared cores (200 000 transactions to process
# first): more than the suite's per-test timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600 + CARDS // 40)]
PARTITIONS = 4
PRIORS = 5  # SPIKE_MIN_PRIOR: the probe's alert needs the card's 5 earlier transactions
#: The README's "within seconds": the session timeout (10 s here) plus a rebalance and restore.
TAKEOVER_LIMIT_S = 45.0

_BULK = re.compile(r"bulk restore: (\d+) changelog records into (\d+) partitions in ([0-9.]+) s")


@dataclass
class Failover:
    standby: int
    cards: int
    takeover_s: float  # SIGKILL -> last probe alert visible to read_committed
    first_alert_s: float  # SIGKILL -> first probe alert
    restored: int  # changelog records the survivor's bulk restores read after the kill
    restore_s: float  # their time, from the log
    moved: int  # changelog records of the killed worker's partitions (what a rebuild reads)

    def line(self) -> str:
        return (
            f"failover, {self.standby} standby, {self.cards} cards per worker: survivor served "
            f"every partition {self.takeover_s:.1f} s after the SIGKILL (first probe alert "
            f"{self.first_alert_s:.1f} s), reading {self.restored} changelog records in "
            f"{self.restore_s:.1f} s (the moved partitions' changelog: {self.moved})"
        )


def _probe_cards() -> dict[int, str]:
    """One card per partition (Kafka's default partitioner, as the test producer uses)."""
    partitioner = DefaultPartitioner()
    parts = list(range(PARTITIONS))
    cards: dict[int, str] = {}
    i = 0
    while len(cards) < PARTITIONS:
        name = f"probe-{i}"
        cards.setdefault(partitioner(name.encode(), parts, parts), name)
        i += 1
    return cards


def _load(probes: dict[int, str]) -> list:
    records = [
        txn(f"t-{i}", f"card-{i}", 12.5 + i % 50, T0 + i, terminal_id=f"pos-{i % 20}")
        for i in range(2 * CARDS)
    ]
    for card in probes.values():
        for k in range(PRIORS):  # 2 min apart: no velocity, no card testing, mean 10, stddev 0
            records.append(txn(f"{card}-prior-{k}", card, 10.0, T0 + k * 2 * MIN))
    return records


def _metric(worker, name: str, label: str = "") -> float | None:
    """Sum of `name`'s samples; None while /metrics does not answer (a busy worker on a loaded
    machine misses the 5 s timeout now and then: not a failure, unless the worker is gone)."""
    assert worker.alive(), f"worker {worker.name} exited:\n{worker.tail()}"
    text = processes.WorkerProcess.metrics(worker)  # "" when it does not answer (no assert)
    if not text:
        return None
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.split("{", 1)[0] == name and label in head:
            total += float(value)
    return total


def _processed(worker) -> float:
    return _metric(worker, "vigil_events_in_total") or 0.0


def _lag(worker) -> float | None:
    return _metric(worker, "vigil_consumer_lag_messages")


async def _end_offsets(bootstrap: str, topic: str) -> int:
    """The sum of the end offsets of a topic's PARTITIONS partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def _watch_probe_alerts(bootstrap: str, topic: str, txn_ids: set[str], timeout: float):
    """(first time seen, alert) of each probe's alert, read_committed, until all or timeout."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[str, tuple[float, dict]] = {}
    try:
        deadline = time.monotonic() + timeout
        while len(seen) < len(txn_ids) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    alert = orjson.loads(r.value)
                    if alert["txn_id"] in txn_ids:
                        seen.setdefault(alert["txn_id"], (now, alert))
    finally:
        await consumer.stop()
    return seen


def _failover(deployment, standby: int) -> Failover:
    deployment.env["VIGIL_PARTITIONS"] = str(PARTITIONS)
    # One after the other, so that B's join is the rebalance that hands out the standbys (two
    # workers of a fresh app id started together once got no cards changelog at all, before
    # Vigil created the changelogs up front).
    a = deployment.worker("a", standby_replicas=standby).start().wait_ready()
    b = deployment.worker("b", standby_replicas=standby).start().wait_ready()
    probes = _probe_cards()
    records = _load(probes)
    deployment.produce(records)
    done, _ = wait_until(lambda: _processed(a) + _processed(b) >= len(records), 120 + CARDS / 100)
    assert done, f"not all processed:\nA:\n{a.tail()}\nB:\n{b.tail()}"
    done, _ = wait_until(lambda: _lag(a) == 0 and _lag(b) == 0, 60)  # every offset committed
    assert done, f"offsets not committed:\n{a.tail()}"
    if standby:
        # B's standby copies of A's partitions follow A's changelog; wait until they stop
        # growing (RocksDB's key estimate, which counts standby partitions too).
        history: list[float] = []

        def settled() -> bool:
            keys = _metric(b, "vigil_table_keys", 'table="cards"')
            if keys is None:
                return False
            history.append(keys)
            # unchanged for 5 s, and more than B's own partitions (standby_buffer_size: up to
            # 999 records per table may stay buffered, applied at the takeover, not re-read)
            return len(history) > 16 and history[-1] == history[-17] >= 1.5 * CARDS

        done, _ = wait_until(settled, 120, interval=0.3)
        assert done, f"B's cards never settled: {history[-12:]}"

    changelog = f"{deployment.env['VIGIL_APP_ID']}-cards-changelog"
    # A's half of it (records and transaction markers): what a rebuild of A's partitions reads
    moved = asyncio.run(_end_offsets(deployment.bootstrap, changelog)) // 2
    log_before = len(b.log_path.read_text())

    a.kill()
    killed = time.monotonic()
    probe_records = [
        txn(f"{card}-probe", card, 100.0, T0 + PRIORS * 2 * MIN) for card in probes.values()
    ]
    deployment.produce(probe_records)
    ids = {value["txn_id"] for _, _, value in probe_records}
    seen = asyncio.run(
        _watch_probe_alerts(deployment.bootstrap, deployment.topics["fraud_alerts"], ids, 180)
    )
    assert set(seen) == ids, f"probe alerts missing: {ids - set(seen)}\n{b.tail()}"
    for _, alert in seen.values():
        rules = {r["rule"]: r for r in alert["rules"]}
        assert "amount_spike" in rules, alert  # so the card's 5 prior transactions were there
        assert f"over {PRIORS} prior transactions" in rules["amount_spike"]["reason"], alert
    assert b.alive(), b.tail()

    restores = _BULK.findall(b.log_path.read_text()[log_before:])
    assert restores, f"no bulk restore after the kill:\n{b.tail()}"
    times = [t for t, _ in seen.values()]
    result = Failover(
        standby=standby,
        cards=CARDS,
        takeover_s=max(times) - killed,
        first_alert_s=min(times) - killed,
        restored=sum(int(n) for n, _, _ in restores),
        restore_s=sum(float(s) for _, _, s in restores),
        moved=moved,
    )
    print(result.line())
    return result


def test_failover_with_a_standby_reads_almost_nothing(deployment):
    result = _failover(deployment, standby=1)
    assert result.takeover_s < TAKEOVER_LIMIT_S, result.line()
    # Whatever A committed after B's standby last fetched, at most: here (A idle) about nothing.
    assert result.restored <= max(50, result.moved // 100), result.line()


def test_failover_without_a_standby_reads_the_moved_partitions(deployment):
    result = _failover(deployment, standby=0)
    assert result.takeover_s < TAKEOVER_LIMIT_S + CARDS / 5000, result.line()
    # The measure tells the two cases apart: without a standby the moved partitions' changelog
    # is read at takeover (all of A's cards).
    assert result.restored >= CARDS * 0.9, result.line()
