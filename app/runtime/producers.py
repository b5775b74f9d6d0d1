"""The worker's Kafka producers: how each is configured and started.

exactly_once: one transactional producer per owned partition of each agent (its id from
`app.runtime.partitions.transactional_id`); at_least_once: one shared idempotent producer.
`app.runtime.partitions` decides when they start and stop.
"""

from __future__ import annotations

from typing import Any

#: Produce batch size of every producer: a checkpoint sends its records in batches of up to
#: this (`app.runtime.checkpoint`); aiokafka's default, 16 KiB, meant ~25 produce requests per
#: partition and checkpoint at a few thousand events/s. Well under the broker's 1 MiB limit.
PRODUCE_BATCH_BYTES = 256 * 1024

#: Kafka aborts a transaction open longer than this (the broker checks every 10 s).
TRANSACTION_TIMEOUT_MS = 15_000


async def start_shared(client_kwargs: dict[str, Any]) -> Any:
    """at_least_once: the one idempotent producer every partition's checkpoint sends through."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **client_kwargs,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=PRODUCE_BATCH_BYTES,
    )
    await producer.start()
    return producer


async def start_transactional(client_kwargs: dict[str, Any], tid: str) -> Any:
    """exactly_once: partition `tid`'s producer, started once Kafka fenced its previous owner."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **client_kwargs,
        transactional_id=tid,
        # A killed worker's open transaction holds back every read_committed reader of its
        # partitions (outputs, labels, changelogs) until its next owner fences it or the
        # broker aborts it at this timeout: short, since a checkpoint's transaction lasts
        # only from its first send to its commit (well under a second).
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=PRODUCE_BATCH_BYTES,
    )
    await producer.start()
    # An empty transaction waits for the producer id: Kafka has fenced the previous owner
    # and finished its open transaction (commit or abort) once this returns.
    await producer.begin_transaction()
    await producer.commit_transaction()
    return producer
