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

from app.contract.decode import feedback_from
from app.contract.events import Feedback
from app.detect.config import FraudConfig
from app.detect.feedback import InMemoryFeedback
from app.exceptions import DecodeError
from app.observe.metrics import VigilMetrics

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

    `caught_up` is set while the index being served holds everything that was committed when
    the current read of the topic started: the fraud agent waits for it so a worker never
    judges a transaction with half its labels, and the worker is not ready without it. After
    an error the follower reads the topic again from the beginning into a new index: meanwhile
    `caught_up` is clear and queries keep being answered from the previous, complete index;
    the new one replaces it once it has caught up.
    """

    #: Seconds between a failed read of the topic and the next one.
    restart_delay_s = 1.0

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
        #: The index queries read: always one whose read of the topic had caught up (or the
        #: empty one before the first catch-up, while `caught_up` is clear).
        self.feedback = InMemoryFeedback(config)
        self.caught_up = asyncio.Event()
        #: Records applied to the index being served.
        self.applied = 0
        self.rebuilds = 0  # reads of the topic started after the first (after errors)

    def fraud_label_times(self, place: str) -> Collection[int]:
        """PlaceLookup: feedback ts of each txn labelled fraud at `place`."""
        return self.feedback.places.fraud_label_times(place)

    def apply(self, value: bytes | None) -> None:
        """Apply one record of the labels topic to the index being served."""
        if _apply(self.feedback, value):
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
                log.exception(
                    "fraud-label follower failed; reading the labels again in %.0f s "
                    "(the current index keeps answering meanwhile)",
                    self.restart_delay_s,
                )
                await asyncio.sleep(self.restart_delay_s)

    def _new_consumer(self) -> Any:
        return AIOKafkaConsumer(
            **self.client_kwargs,
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )

    def _start_rebuild(self) -> InMemoryFeedback:
        """A new read of the topic begins: not caught up until it is; a fresh index to fill."""
        if self.caught_up.is_set() or self.applied:
            self.rebuilds += 1
            log.warning("fraud labels: rebuilding the index from the beginning of the topic")
        self.caught_up.clear()
        return InMemoryFeedback(self.config)

    def _serve(self, index: InMemoryFeedback, applied: int) -> None:
        """The index has caught up with the topic: answer from it from now on."""
        self.feedback = index
        self.applied = applied
        if self.metrics is not None:
            self.metrics.set_table_keys("fraud-labels", len(index.records))
        log.info("fraud labels caught up: %d records applied", applied)
        self.caught_up.set()

    async def _follow(self) -> None:
        consumer = self._new_consumer()
        index = self._start_rebuild()
        await consumer.start()
        try:
            # Vigil creates the labels topic with VIGIL_PARTITIONS partitions; taking the count
            # from there avoids asking metadata for a topic this consumer is not assigned yet.
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if end[tp] > 0}
            applied = 0
            if not pending:
                self._serve(index, applied)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in batches.values():
                    for record in records:
                        if _apply(index, record.value):
                            applied += 1
                if not pending:  # serving `index`: keep the count and gauge current
                    self.applied = applied
                    if batches and self.metrics is not None:
                        self.metrics.set_table_keys("fraud-labels", len(index.records))
                    continue
                for tp in list(pending):
                    if await consumer.position(tp) >= end[tp]:
                        pending.discard(tp)
                if not pending:
                    self._serve(index, applied)
        finally:
            await consumer.stop()


def _apply(index: InMemoryFeedback, value: bytes | None) -> bool:
    """Apply one record of the labels topic to `index`; False when skipped (loudly if bad)."""
    if value is None:
        return False
    try:
        index.process(feedback_from(orjson.loads(value)))
    except (DecodeError, orjson.JSONDecodeError) as exc:  # written by us: a bug if seen
        log.error("skipping unreadable fraud label %r: %s", value[:200], exc)
        return False
    return True
