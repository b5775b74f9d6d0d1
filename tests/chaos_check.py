"""The chaos harness's checks: is all input processed, what did read_committed readers get, and
how does it differ from `vigil replay` of the same records.

Outputs are matched by id, every field compared but the wall-clock one: fraud alerts by
`alert_id`, cart events by `event_id`, dead letters by (source_topic, partition, offset) (the
replay input carries each record's real partition and offset, so replay numbers them the way
the workers do); `detected_ts` (alerts, carts) and `ts` (dead letters) are not compared.
Per topic: lost (expected, not there), duplicated (there more often than expected), unexpected
(there, never expected) and mismatched (there, but some copy differs from replay's).

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.chaos_workload import Input
from tests.replay_compare import envelope, replay_outputs

Output = tuple[str | None, dict[str, Any]]  # (key, value)

IDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "fraud_alerts": lambda v: v.get("alert_id"),
    "cart_abandoned": lambda v: v.get("event_id"),
    "cart_recovered": lambda v: v.get("event_id"),
    "dead_letters": lambda v: (v.get("source_topic"), v.get("partition"), v.get("offset")),
}
WALL_CLOCK_FIELDS = {"detected_ts", "ts"}  # dead letters' `ts`, the others' `detected_ts`


@dataclass(frozen=True, slots=True)
class Sent:
    """A produced record and where the broker put it."""

    item: Input
    partition: int
    offset: int


@dataclass
class TopicDiff:
    kind: str
    expected: int
    live: int
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    mismatched: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.mismatched)

    def figures(self) -> str:
        return (
            f"{self.kind}: {self.live}/{self.expected} lost={self.lost} "
            f"dup={self.duplicated} unexpected={self.unexpected} mismatched={self.mismatched}"
        )


def _comparable(key: str | None, value: dict[str, Any]) -> bytes:
    body = {k: v for k, v in value.items() if k not in WALL_CLOCK_FIELDS}
    return orjson.dumps({"key": key, "value": body}, option=orjson.OPT_SORT_KEYS)


def compare(kind: str, expected: Sequence[Output], live: Sequence[Output]) -> TopicDiff:
    """Multiset comparison by id; a mismatch is an id whose live copies differ from replay's."""
    ident = IDS[kind]
    want: dict[Any, list[bytes]] = {}
    got: dict[Any, list[bytes]] = {}
    for key, value in expected:
        want.setdefault(ident(value), []).append(_comparable(key, value))
    for key, value in live:
        got.setdefault(ident(value), []).append(_comparable(key, value))
    diff = TopicDiff(kind, len(expected), len(live))

    def note(what: str, ident_: Any, body: bytes) -> None:
        if len(diff.examples) < 6:
            diff.examples.append(f"{what} {ident_!r}: {body.decode()[:400]}")

    for ident_, bodies in want.items():
        copies = got.get(ident_, [])
        if len(copies) < len(bodies):
            diff.lost += len(bodies) - len(copies)
            note("lost", ident_, bodies[0])
        elif len(copies) > len(bodies):
            diff.duplicated += len(copies) - len(bodies)
            note(f"x{len(copies)}", ident_, copies[0])
        if copies and set(copies) != set(bodies):
            diff.mismatched += 1
            note("expected", ident_, bodies[0])
            note("     got", ident_, next(c for c in copies if c not in bodies))
    for ident_, copies in got.items():
        if ident_ not in want:
            diff.unexpected += len(copies)
            note("unexpected", ident_, copies[0])
    return diff


def replay(
    sent: Sequence[Sent], topics: dict[str, str], workdir: Path, **settings: Any
) -> dict[str, list[Output]]:
    """`vigil replay` of the produced records in production order, with their real offsets."""
    lines = [
        envelope(
            topics[s.item.kind], s.item.key, s.item.value, partition=s.partition, offset=s.offset
        )
        for s in sent
    ]
    return replay_outputs(lines, topics, workdir, **settings)


async def wait_drained(
    bootstrap: str,
    group: str,
    topics: Sequence[str],
    partitions: int,
    timeout: float,
    between: Callable[[], None],
) -> tuple[dict[str, int], dict[str, int]]:
    """Poll the group's committed offsets until they reach every input partition's end.

    Returns (input end offsets, what is still uncommitted) per "topic[partition]"; the second
    is empty when everything is processed. `between` runs between polls (crash checks).
    """
    tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while True:
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            lag = {}
            for tp in tps:
                meta = committed.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else 0
                if ends[tp] > done:
                    lag[f"{tp.topic}[{tp.partition}]"] = ends[tp] - done
            if not lag or time.monotonic() > deadline:
                return {f"{tp.topic}[{tp.partition}]": ends[tp] for tp in tps}, lag
            between()
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
        await admin.close()


async def read_outputs(
    bootstrap: str, topics: dict[str, str], partitions: int, timeout: float, settle: float
) -> tuple[dict[str, list[Output]], bool]:
    """Every committed record of the output topics (read_committed), and whether the reader got
    to the end of each partition. After reaching the end it reads `settle` s more, so records
    that should not be there at all still show."""
    tps = {
        TopicPartition(name, p): kind for kind, name in topics.items() for p in range(partitions)
    }
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: dict[str, list[tuple[int, int, Output]]] = {kind: [] for kind in topics}
    try:
        consumer.assign(list(tps))
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(list(tps))  # the last stable offsets
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while True:
            batch = await consumer.getmany(timeout_ms=300, max_records=5000)
            for tp, records in batch.items():
                for r in records:
                    key = r.key.decode() if r.key is not None else None
                    try:
                        value = orjson.loads(r.value)
                    except orjson.JSONDecodeError:
                        value = {"unreadable": r.value.decode(errors="replace")}
                    out[tps[tp]].append((r.partition, r.offset, (key, value)))
            now = time.monotonic()
            positions = {tp: await consumer.position(tp) for tp in tps}
            at_end = all(positions[tp] >= ends[tp] for tp in tps)
            if at_end and settle_until is None:
                settle_until = now + settle
            if at_end and settle_until is not None and now >= settle_until:
                fresh = await consumer.end_offsets(list(tps))
                if all(positions[tp] >= fresh[tp] for tp in tps):
                    break
                ends, settle_until = fresh, None  # more arrived: read it, settle again
            if now >= deadline:
                break
    finally:
        await consumer.stop()
    result = {
        kind: [o for _, _, o in sorted(rows, key=lambda x: x[:2])] for kind, rows in out.items()
    }
    return result, at_end


def input_counts(sent: Sequence[Sent], topics: dict[str, str]) -> Counter[str]:
    """How many records the producer put in each "topic[partition]"."""
    return Counter(f"{topics[s.item.kind]}[{s.partition}]" for s in sent)


def rules_fired(alerts: Sequence[Output]) -> set[str]:
    return {hit["rule"] for _, value in alerts for hit in value.get("rules", [])}
