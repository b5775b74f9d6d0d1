"""Every worker's copy of the one model: it follows the training topic, in one order.

Design (see the README, "Risk scoring", for the alternatives weighed):

1. the fraud agent writes each scored transaction's features (`example_value`) to the
   single-partition topic `<app_id>-model-training`, inside the same Kafka transaction as its
   `txn-scores` output and its input offset; the feedback agent writes each valid label
   (`label_record`) there too, in its own transaction;
2. every worker runs one `ModelFollower`: a plain read_committed consumer of that partition,
   applying each record, in offset order, to a `DelayedLearner` through the same code replay
   uses. One partition is one total order, so every worker's model after offset N is the same
   model, bit for bit, and an aborted transaction (a crash, a zombie) never reaches it;
3. a snapshot of the learner (model, held examples, labels, offset) is written to
   `<store>/vigil/model/learner.snap` every `VIGIL_MODEL_SNAPSHOT_S` and at shutdown
   (write to a temporary file, then rename): a restarted worker loads it and reads only the
   records after its offset. A snapshot that cannot be read, or was made with other model
   settings or by another version (the JSON `learner.json` of earlier versions), is ignored
   (logged) and the topic is read from its beginning. The periodic snapshot is serialised
   section by section (`DelayedLearner.snapshot_parts`, binary) from the follower's own task,
   yielding to the event loop between sections: the follower is the learner's only writer, so
   the sections are of one state, and the fraud agent is never held up for the whole of it.

The fraud agent scores with whatever model its worker has read so far, so a live score may
lag the replay's by the records not yet read (see the README for the tolerance).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import struct
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.contract.decode import feedback_from
from app.contract.events import Feedback
from app.exceptions import DecodeError
from app.observe.metrics import VigilMetrics
from app.score.config import ScoreConfig
from app.score.learner import DelayedLearner, Example

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "learner.snap"
#: The JSON snapshot of earlier versions (never read now: removed when found).
OLD_SNAPSHOT_NAME = "learner.json"
#: The follower's fetches: the broker answers once this much is there, or after the wait.
FETCH_MIN_BYTES = 256 * 1024
FETCH_WAIT_MS = 100

#: `<app_id>-model-training`: the single-partition topic of examples and labels.
TRAINING_TOPIC_SUFFIX = "model-training"


#: First byte of a binary example record (a JSON record starts with `{`).
EXAMPLE_MAGIC = b"X"
_HEAD = struct.Struct("<I")  # ids may be long: a record value may hold up to 1 MiB
_LITTLE = sys.byteorder == "little"


def example_value(example: Example) -> bytes:
    """The training-topic record of one scored transaction (`apply_record` reads it back).

    Binary: `X`, the length of a JSON head `[txn_id, card_id, place, ts]` (4 bytes, little
    endian), the head, then the features as little-endian float64 (exact: the model every
    worker learns equals replay's). Every transaction writes one, and every worker reads
    every one: as JSON (a float list) it was ~2.5 times the bytes and ~5 % of a worker's CPU
    to write and read (bench/README.md, session 5).
    """
    head = orjson.dumps([example.txn_id, example.card_id, example.place, example.ts])
    x = example.x
    if x is None:
        return EXAMPLE_MAGIC + _HEAD.pack(len(head)) + head
    if not _LITTLE:
        x = array("d", x)
        x.byteswap()
    return EXAMPLE_MAGIC + _HEAD.pack(len(head)) + head + x.tobytes()


def example_of(value: bytes) -> Example:
    """The example of a binary record (ValueError when it is not one)."""
    (size,) = _HEAD.unpack_from(value, 1)
    end = 1 + _HEAD.size + size
    txn_id, card_id, place, ts = orjson.loads(value[1 + _HEAD.size : end])
    body = memoryview(value)[end:]
    x: array[float] | None = None
    if len(body):
        x = array("d")
        x.frombytes(body)
        if not _LITTLE:
            x.byteswap()
    return Example(txn_id, card_id, place, ts, x)


def label_record(feedback: Feedback) -> bytes:
    """The training-topic record of one label."""
    return orjson.dumps(
        {
            "kind": "label",
            "txn_id": feedback.txn_id,
            "label": feedback.label,
            "ts": feedback.ts,
            "card_id": feedback.card_id,
            "terminal_id": feedback.terminal_id,
            "merchant_id": feedback.merchant_id,
        }
    )


def apply_record(learner: DelayedLearner, value: bytes | None) -> str | None:
    """Apply one training-topic record; return the label's kind (None for an example)."""
    learner.offset += 1
    if value is None:
        return None
    try:
        if value[:1] == EXAMPLE_MAGIC:
            learner.add_example(example_of(value))
            return None
        obj = orjson.loads(value)
        if obj.get("kind") == "example":  # written by Vigil before session 5
            x = obj["x"]
            learner.add_example(
                Example(
                    obj["txn_id"],
                    obj["card_id"],
                    obj["place"],
                    obj["ts"],
                    array("d", x) if x is not None else None,
                )
            )
            return None
        return learner.add_label(feedback_from({k: v for k, v in obj.items() if k != "kind"}))
    except (
        DecodeError,
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        struct.error,
    ) as exc:
        log.error("skipping unreadable training record %r: %s", value[:200], exc)  # our bug
        return None


def config_fingerprint(config: ScoreConfig) -> str:
    """What a snapshot must have been learned with to be reused (learning settings)."""
    return hashlib.sha256(repr(config).encode()).hexdigest()[:16]


class ModelFollower:
    """Follows the training topic on every worker; scorers read `learner`."""

    restart_delay_s = 1.0

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        config: ScoreConfig,
        snapshot_dir: Path | None,
        metrics: VigilMetrics | None = None,
        *,
        snapshot_s: float = 30.0,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.config = config
        self.snapshot_dir = snapshot_dir
        self.metrics = metrics
        self.snapshot_s = snapshot_s
        self.client_kwargs = {
            k: v for k, v in (client_kwargs or {}).items() if k != "bootstrap_servers"
        }
        self.learner = self._load() or DelayedLearner(config)
        self.restored_offset = self.learner.offset  # where this worker's read started
        self.caught_up = asyncio.Event()
        self._reported: dict[str, int] = dict(self.learner.counts)
        self._reported_updates = self.learner.updates
        self._saved_offset = self.learner.offset
        self._report()

    # -- snapshots -----------------------------------------------------------------------------

    @property
    def snapshot_path(self) -> Path | None:
        """`<store>/vigil/model/learner.snap`, or None when snapshots are off (tests)."""
        return self.snapshot_dir / SNAPSHOT_NAME if self.snapshot_dir is not None else None

    def _load(self) -> DelayedLearner | None:
        path = self.snapshot_path
        if path is None:
            return None
        old = path.with_name(OLD_SNAPSHOT_NAME)
        if old.exists():  # Vigil wrote it: an earlier version's snapshot, unreadable now
            log.warning("model snapshot %s is of an older version: not used, removed", old)
            old.unlink(missing_ok=True)
        if not path.exists():
            return None
        try:
            raw = path.read_bytes()
            head = DelayedLearner.snapshot_head(raw)
            if head.get("config") != config_fingerprint(self.config):
                log.warning("model snapshot %s was learned with other settings: not used", path)
                return None
            learner = DelayedLearner.from_bytes(raw, self.config)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "model snapshot %s not used (%s): reading the topic from the start", path, exc
            )
            return None
        log.info("model snapshot loaded: offset %d, %d updates", learner.offset, learner.updates)
        return learner

    def save(self) -> Path | None:
        """Write the snapshot now, in one go (atomically: temporary file, then rename)."""
        self._writer(list(self.learner.snapshot_parts(config=config_fingerprint(self.config))))()
        return self.snapshot_path

    async def save_async(self) -> None:
        """Write the snapshot, serialised section by section on the loop (yielding between
        sections) and written in a thread (never joined on the loop: 100 MB with 200 000
        examples held). Only the follower's own task may call it: nothing else changes the
        learner, so the sections describe one state."""
        parts = []
        for part in self.learner.snapshot_parts(config=config_fingerprint(self.config)):
            parts.append(part)
            await asyncio.sleep(0)
        write = self._writer(parts)
        await asyncio.get_running_loop().run_in_executor(None, write)

    # -- following -----------------------------------------------------------------------------

    def _report(self) -> None:
        if self.metrics is None:
            return
        risk = self.metrics.risk
        counts = self.learner.counts
        for kind, n in counts.items():
            if n > self._reported.get(kind, 0):
                risk.learned(kind, n - self._reported.get(kind, 0))
        self._reported = dict(counts)
        if self.learner.updates > self._reported_updates:
            risk.updates.inc(self.learner.updates - self._reported_updates)
        self._reported_updates = self.learner.updates
        risk.set_state(self.learner.size, self.learner.offset)

    async def run(self) -> None:
        """Follow the topic for as long as the worker runs; restart after errors."""
        try:
            while True:
                try:
                    await self._follow()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception(
                        "model follower failed; reading on in %.0f s", self.restart_delay_s
                    )
                    await asyncio.sleep(self.restart_delay_s)
        finally:
            if self.learner.offset != self._saved_offset:
                self.save()

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            **self.client_kwargs,
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            # Every worker reads every scored transaction's example: in fetches of a few
            # hundred KiB, not one small fetch per produce (at_least_once writes trickle in
            # continuously; one fetch each cost ~5 % of a fraud worker, bench/README.md).
            # The model lags by at most FETCH_WAIT_MS more: nothing, beside the label delay.
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, self.learner.offset)
            end = (await consumer.end_offsets([tp]))[tp]
            if await consumer.position(tp) >= end:
                self._caught_up()
            last_save = time.monotonic()
            while True:
                batches = await consumer.getmany(tp, timeout_ms=200, max_records=2000)
                for record in batches.get(tp, ()):
                    # Offsets of aborted transactions' records and of commit markers are
                    # skipped by read_committed: the learner's offset follows the records.
                    self.learner.offset = record.offset
                    apply_record(self.learner, record.value)
                if batches:
                    self._report()
                if not self.caught_up.is_set() and await consumer.position(tp) >= end:
                    self._caught_up()
                if time.monotonic() - last_save >= self.snapshot_s:
                    if self.learner.offset != self._saved_offset:
                        await self.save_async()
                    last_save = time.monotonic()
        finally:
            await consumer.stop()

    def _writer(self, parts: list[bytes]) -> Callable[[], None]:
        """A function that writes `parts` as the snapshot of the learner's current offset."""
        path = self.snapshot_path
        offset = self.learner.offset

        def write() -> None:
            if path is None:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".snap.tmp")
            with open(tmp, "wb") as fh:
                fh.writelines(parts)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            self._saved_offset = offset

        return write

    def _caught_up(self) -> None:
        log.info(
            "model caught up: offset %d (%d read since start), %d updates, %d frauds learned",
            self.learner.offset,
            self.learner.offset - self.restored_offset,
            self.learner.updates,
            self.learner.frauds,
        )
        self._report()
        self.caught_up.set()
