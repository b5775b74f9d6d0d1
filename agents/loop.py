"""The agents' loop and what a handler writes: state and outputs staged in its partition's
transaction (`app.runtime.transactions`), dead letters for what cannot be processed.

A handler is synchronous: decode, read state, detect, stage the new state and the outputs.
The loop brackets it as one event of the partition's transaction: a handler that raises has
what it staged rolled back and its record dead-lettered as `internal error: ...`, so one
poisoned record neither stops the partition nor leaves half its changes behind
(`app.contract.intake.failure` words the reason, the same for `vigil replay`). Everything is
sent at the next checkpoint (`app.runtime.partitions`), in the partition's Kafka transaction.

Outputs go to the same partition number as the input record. Output topics have the same
partition count and the default partitioner hashes the same key, so this is where the key
would land anyway; being explicit keeps every write in the partition's transaction.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

import orjson
from faust.types import Message, StreamT, TopicT

from app.contract.deadletters import dead_letter
from app.contract.intake import Rejected, failure
from app.contract.timeutil import now_ms
from app.runtime.service import app, metrics, topics, transactions
from app.runtime.transactions import PartitionTransaction

Handler = Callable[[PartitionTransaction, Message], None]

log = logging.getLogger(__name__)


def _skipped(why: str, message: Message, detail: str = "") -> None:
    """DEBUG_VIGIL_COMMITS: an event not taken (or taken after a jump), for chaos post-mortems."""
    log.warning(
        "event %s (generation %s): %s/%s@%d %s",
        why,
        message.generation_id,
        message.topic,
        message.partition,
        message.offset,
        detail,
    )


def send_json(
    txn: PartitionTransaction, topic: TopicT, key: str | bytes | None, value: Any, partition: int
) -> None:
    """Stage one JSON value, keyed, for `partition` of `topic`."""
    raw_key = key.encode() if isinstance(key, str) else key
    txn.send(topic.get_topic_name(), raw_key, orjson.dumps(value), partition)


def reject(txn: PartitionTransaction, message: Message, rejected: Rejected) -> None:
    """Stage the input record on dead letters with its reason and original bytes; count it.

    A record holding a raw card number is stored as the intake masked it, key included.
    """
    raw_key = rejected.key if rejected.masked else message.key
    if not isinstance(raw_key, bytes | str | None):
        raw_key = None
    value = dead_letter(
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=raw_key,
        error=rejected.error,
        payload=rejected.payload if rejected.masked else message.value,
        ts_ms=now_ms(),
    )
    key = raw_key.encode() if isinstance(raw_key, str) else raw_key
    txn.send(topics.dead_letters.get_topic_name(), key, orjson.dumps(value), message.partition)
    metrics.dead_letter(message.topic, rejected.kind)
    metrics.event_in(message.topic, "dead_letter")


async def run(
    stream: StreamT,
    handle: Handler,
    *,
    ready: asyncio.Event | None = None,
    on_rollback: Callable[[int], None] | None = None,
) -> None:
    """Run `handle` on every event of `stream`, each one whole in its partition's transaction.

    `ready`: events wait while it is clear (the fraud agent waits for the labels).
    `on_rollback(partition)`: called after a handler failed and its writes were rolled back
    (an agent drops in-memory caches derived from that partition's state).
    """
    gate = transactions.gate
    debug = bool(os.environ.get("DEBUG_VIGIL_COMMITS"))
    for_source = transactions.for_source
    current = transactions.current_generation

    async def consumer_seek(tp: Any, offset: int | None) -> None:
        if offset is not None:
            await app.consumer.seek(tp, offset)

    async for event in stream.events():
        if ready is not None and not ready.is_set():
            await ready.wait()
        if gate.closed:
            await gate.wait_open()
        message = event.message
        # An event fetched before a rebalance that this agent held across it (waiting above)
        # belongs to a partition Faust has since sought back, or handed to another worker:
        # staging it would commit its offset from a transaction that no longer owns it.
        if message.generation_id != current():
            if debug:
                _skipped("generation", message, f"{message.generation_id} != {current()}")
            continue
        txn = for_source(message.topic, message.partition)
        if txn.halted:  # Kafka refused its last checkpoint: redone after the rebalance
            if debug:
                _skipped("halted", message)
            continue
        if txn.already_taken(message.tp, message.offset):  # delivered again after a seek
            metrics.event_in(message.topic, "redelivered")
            if debug:
                _skipped("taken", message)
            continue
        verdict = txn.continuity(message.tp, message.offset)
        if verdict != "take":
            expected = txn.next_offset(message.tp)
            if verdict == "seek":
                log.warning(
                    "%s/%d: offset %d came after %s; seeking back to the last taken event's "
                    "successor (records Faust fetched may not have been delivered)",
                    message.topic,
                    message.partition,
                    message.offset,
                    expected,
                )
                await consumer_seek(message.tp, expected)
            elif debug:
                _skipped("wait", message, f"sought back to {expected}")
            continue
        txn.begin_event()
        try:
            handle(txn, message)
        except Exception as exc:
            txn.rollback_event()
            if on_rollback is not None:
                on_rollback(message.partition)
            reject(txn, message, failure(exc))
        txn.end_event(message.tp, message.offset)
