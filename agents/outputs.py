"""How agents write: JSON outputs in the input's partition, and dead letters with metrics.

Outputs go to the same partition number as the input record. Output topics have the same
partition count and the default partitioner hashes the same key, so this is where the key
would land anyway; being explicit keeps every write inside the Kafka transaction of the
partition being processed (Faust's exactly-once producers are per owned partition).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from faust.types import EventT, Message, StreamT, TopicT

from app.deadletters import dead_letter
from app.intake import Rejected
from app.main import gate, metrics, topics
from app.timeutil import now_ms

log = logging.getLogger(__name__)


async def send_json(topic: TopicT, key: str | bytes | None, value: Any, partition: int) -> None:
    """Send one JSON value, keyed, to `partition` of `topic` (in the current transaction)."""
    raw_key = key.encode() if isinstance(key, str) else key
    await topic.send(key=raw_key, value=orjson.dumps(value), partition=partition)


async def reject(message: Message, rejected: Rejected) -> None:
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
    await topics.dead_letters.send(
        key=message.key, value=orjson.dumps(value), partition=message.partition
    )
    metrics.dead_letter(message.topic, rejected.kind)
    metrics.event_in(message.topic, "dead_letter")


def internal_error(exc: BaseException) -> Rejected:
    """A bug or corrupt state met while processing: logged, and the record dead-lettered.

    The agent keeps going: one poisoned record must not stop a partition.
    """
    log.exception("processing failed; record sent to dead letters")
    return Rejected(f"internal error: {type(exc).__name__}: {exc}", "internal")


async def process_each(stream: StreamT, handle: Callable[[EventT], Awaitable[None]]) -> None:
    """Run `handle` on every event of `stream`, each one whole inside the commit gate.

    With exactly_once a commit never falls between an event's outputs and its ack
    (see `app.exactly_once`).
    """
    async for event in stream.events():
        async with gate.event():
            await handle(event)
