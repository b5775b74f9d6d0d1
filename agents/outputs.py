"""How agents write: JSON outputs in the input's partition, table state, and dead letters.

Handlers are synchronous: they decode, read state, detect and *queue* what the event writes
in the agent's `app.outbox.Outbox`. The loop here sends the queue in batches: whenever no
further event is waiting in the stream's buffer (so a quiet stream adds no latency), when the
queue is long, and before every commit (the commit gate flushes it: `app.exactly_once`).

Outputs go to the same partition number as the input record. Output topics have the same
partition count and the default partitioner hashes the same key, so this is where the key
would land anyway; being explicit keeps every write inside the Kafka transaction of the
partition being processed (Faust's exactly-once producers are per owned partition).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from faust.types import EventT, Message, StreamT, TopicT

from app.deadletters import dead_letter
from app.intake import Rejected
from app.main import app, gate, metrics, topics
from app.outbox import Outbox, PartitionedTable
from app.timeutil import now_ms

log = logging.getLogger(__name__)

#: Records queued before the loop sends them even though more events are waiting.
FLUSH_AT = 1000


class Outputs:
    """One agent's outbox, with the writes Vigil's agents make."""

    def __init__(self, source_topic: str) -> None:
        self.outbox = Outbox(app, source_topic)
        gate.add_flusher(self.outbox.flush)

    def json(self, topic: TopicT, key: str | bytes | None, value: Any, partition: int) -> None:
        """Queue one JSON value, keyed, for `partition` of `topic` (that partition's txn)."""
        raw_key = key.encode() if isinstance(key, str) else key
        self.outbox.send(topic.get_topic_name(), raw_key, orjson.dumps(value), partition)

    def raw(self, topic: TopicT, key: bytes | None, value: bytes, partition: int) -> None:
        """Queue one record whose value is already bytes."""
        self.outbox.send(topic.get_topic_name(), key, value, partition)

    def put(self, table: PartitionedTable, key: bytes, value: bytes, partition: int) -> None:
        """Store `key` in the partition's RocksDB now; its changelog record goes with the rest."""
        self.outbox.put(table, key, value, partition)

    def delete(self, table: PartitionedTable, key: bytes, partition: int) -> None:
        """Remove `key` from the partition's RocksDB now; its tombstone goes with the rest."""
        self.outbox.delete(table, key, partition)

    def reject(self, message: Message, rejected: Rejected) -> None:
        """Put an input record on dead letters with its reason and original bytes; count it."""
        value = dead_letter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            error=rejected.error,
            payload=message.value,
            ts_ms=now_ms(),
        )
        key = message.key if isinstance(message.key, bytes | None) else None
        self.raw(topics.dead_letters, key, orjson.dumps(value), message.partition)
        metrics.dead_letter(message.topic, rejected.kind)
        metrics.event_in(message.topic, "dead_letter")

    async def run(self, stream: StreamT, handle: Callable[[EventT], None]) -> None:
        """Run `handle` on every event of `stream`, each one whole inside the commit gate.

        With exactly_once a commit never falls between an event's outputs and its ack, and
        the records of events already acked are flushed by the commit itself.
        """
        outbox = self.outbox
        waiting: Callable[[], int] | None = None
        async for event in stream.events():
            async with gate.event():
                handle(event)
                if waiting is None:  # the stream's buffer exists once it is iterated
                    queue = getattr(stream.channel, "queue", None)
                    waiting = queue.qsize if queue is not None else (lambda: 0)
                if len(outbox) >= FLUSH_AT or not waiting():
                    await outbox.flush()


def internal_error(exc: BaseException) -> Rejected:
    """A bug or corrupt state met while processing: logged, and the record dead-lettered.

    The agent keeps going: one poisoned record must not stop a partition.
    """
    log.exception("processing failed; record sent to dead letters")
    return Rejected(f"internal error: {type(exc).__name__}: {exc}", "internal")
