"""Every worker's copy of the fraud labels, for the `compromised_terminal` rule.

Feedback arrives keyed by `txn_id`, but the rule asks "how many fraud labels does this
terminal have?" while processing a transaction keyed by card: any worker may need any
terminal's labels. Vigil therefore replicates the labels to every worker:

1. the `feedback` agent (exactly-once, per `txn_id` partition) decodes each label and writes
   it, normalised, to the compacted internal topic `<app_id>-fraud-labels`, keyed by
   `txn_id`, in the same partition and Kafka transaction as its input offset;
2. every worker runs one `LabelFollower`, a plain consumer of all partitions of that topic
   (read_committed, from the beginning), applying each record through the same pure code
   `vigil replay` uses (`app.detect.feedback.InMemoryFeedback`): per `txn_id` the record
   processed last wins, per place the fraud labels are counted.

Why not Faust's GlobalTable or a repartition by terminal: a GlobalTable written from several
partitions loses updates to the same terminal, GlobalTables have open reports of workers
missing updates (robinhood/faust #541, #716), and Faust's exactly-once producers are per
owned partition, so a repartition to a partition another worker owns cannot be transactional.
Labels are few (confirmed fraud cases), so an in-memory copy per worker is small; the
compacted topic is its durable store, kept beyond the input topic's retention.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.decode import feedback_from
from app.detect.config import FraudConfig
from app.detect.feedback import InMemoryFeedback
from app.events import Feedback
from app.exceptions import DecodeError
from app.metrics import VigilMetrics

log = logging.getLogger(__name__)


def label_value(feedback: Feedback) -> bytes:
    """The normalised record the feedback agent writes (decodes with `feedback_from`)."""
    return orjson.dumps(
        {
            "txn_id": feedback.txn_id,
            "label": feedback.label,
            "ts": feedback.ts,
            "terminal_id": feedback.terminal_id,
            "merchant_id": feedback.merchant_id,
        }
    )


class LabelFollower:
    """Follows the labels topic on every worker and answers `PlaceLookup` queries.

    `caught_up` is set once the follower has applied everything that was committed when it
    started: the fraud agent waits for it so a restarted worker never judges a transaction
    with half its labels.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        config: FraudConfig,
        metrics: VigilMetrics | None = None,
        partitions: int = 1,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.partitions = partitions
        # Further aiokafka arguments (SASL credentials: `Settings.kafka_client_kwargs()`).
        self.client_kwargs = {
            k: v for k, v in (client_kwargs or {}).items() if k != "bootstrap_servers"
        }
        self.config = config
        self.metrics = metrics
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.feedback = InMemoryFeedback(config)
        self.caught_up = asyncio.Event()
        self.applied = 0

    def fraud_label_times(self, place: str) -> Collection[int]:
        """PlaceLookup: feedback ts of each txn labelled fraud at `place`."""
        return self.feedback.places.fraud_label_times(place)

    def apply(self, value: bytes | None) -> None:
        """Apply one record of the labels topic (skipping anything unreadable, loudly)."""
        if value is None:
            return
        try:
            self.feedback.process(feedback_from(orjson.loads(value)))
        except (DecodeError, orjson.JSONDecodeError) as exc:  # written by us: a bug if seen
            log.error("skipping unreadable fraud label %r: %s", value[:200], exc)
            return
        self.applied += 1

    async def run(self) -> None:
        """Follow the topic forever (a background task of the worker); restart on errors.

        Until `caught_up` is set the fraud agent holds its transactions, so a failure here must
        never end the task silently: it is logged and the follower starts over.
        """
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fraud-label follower failed; restarting in 1 s")
                await asyncio.sleep(1.0)

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
            # Vigil creates the labels topic with VIGIL_PARTITIONS partitions; taking the count
            # from there avoids asking metadata for a topic this consumer is not assigned yet.
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if end[tp] > 0}
            self.feedback = InMemoryFeedback(self.config)  # a restart re-reads everything
            self.applied = 0
            if not pending:
                self.caught_up.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in batches.values():
                    for record in records:
                        self.apply(record.value)
                if batches and self.metrics is not None:
                    self.metrics.set_table_keys("fraud-labels", len(self.feedback.records))
                if pending:
                    for tp in list(pending):
                        if await consumer.position(tp) >= end[tp]:
                            pending.discard(tp)
                    if not pending:
                        log.info("fraud labels caught up: %d records applied", self.applied)
                        self.caught_up.set()
        finally:
            await consumer.stop()
