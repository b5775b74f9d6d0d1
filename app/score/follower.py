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
   `<store>/vigil/model/learner.json` every `VIGIL_MODEL_SNAPSHOT_S` and at shutdown
   (write to a temporary file, then rename): a restarted worker loads it and reads only the
   records after its offset. A snapshot that cannot be read, or was made with other model
   settings, is ignored (logged) and the topic is read from its beginning.

The fraud agent scores with whatever model its worker has read so far, so a live score may
lag the replay's by the records not yet read (see the README for the tolerance).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from array import array
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

SNAPSHOT_NAME = "learner.json"
#: `<app_id>-model-training`: the single-partition topic of examples and labels.
TRAINING_TOPIC_SUFFIX = "model-training"


def example_value(example: Example) -> bytes:
    """The training-topic record of one scored transaction (`apply_record` reads it back)."""
    x = example.x.tolist() if example.x is not None else None
    return orjson.dumps(
        {
            "kind": "example",
            "txn_id": example.txn_id,
            "card_id": example.card_id,
            "place": example.place,
            "ts": example.ts,
            "x": x,
        }
    )


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
        obj = orjson.loads(value)
        if obj.get("kind") == "example":
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
    except (DecodeError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
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
        """`<store>/vigil/model/learner.json`, or None when snapshots are off (tests)."""
        return self.snapshot_dir / SNAPSHOT_NAME if self.snapshot_dir is not None else None

    def _load(self) -> DelayedLearner | None:
        path = self.snapshot_path
        if path is None or not path.exists():
            return None
        try:
            raw = path.read_bytes()
            head = orjson.loads(raw)
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
        """Write the snapshot now (atomically: temporary file, then rename)."""
        self._save_copy()()
        return self.snapshot_path

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
                        await asyncio.get_running_loop().run_in_executor(None, self._save_copy())
                    last_save = time.monotonic()
        finally:
            await consumer.stop()

    def _save_copy(self) -> Any:
        """Serialise now (on the loop, consistent), write in a thread."""
        path = self.snapshot_path
        # One serialisation on the loop (the learner must not change meanwhile): with a week of
        # examples held it takes a noticeable fraction of a second; the write is in a thread.
        raw = self.learner.to_bytes(config=config_fingerprint(self.config))
        offset = self.learner.offset

        def write() -> None:
            if path is None:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".json.tmp")
            with open(tmp, "wb") as fh:
                fh.write(raw)
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
