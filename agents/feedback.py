"""Fraud feedback in: decode, then publish the label to every worker (see `app.runtime.labels`)."""

from __future__ import annotations

from time import perf_counter

from faust.types import Message, StreamT

from agents import loop
from app.contract.intake import FEEDBACK, Rejected
from app.runtime.labels import label_value
from app.runtime.service import app, metrics, settings, topics
from app.runtime.transactions import PartitionTransaction

TOPIC = settings.topic_feedback
LABELS = topics.fraud_labels.get_topic_name()


@app.agent(topics.feedback, name="vigil-feedback")
async def relay_feedback(stream: StreamT) -> None:
    """Write each valid label to the compacted labels topic, in this record's transaction."""
    await loop.run(stream, _handle)


def _handle(txn: PartitionTransaction, message: Message) -> None:
    started = perf_counter()
    feedback = FEEDBACK(message.value, message.key)
    if isinstance(feedback, Rejected):
        loop.reject(txn, message, feedback)
        return
    txn.send(LABELS, feedback.txn_id.encode(), label_value(feedback), message.partition)
    metrics.event_in(TOPIC, "ok")
    metrics.observe_processing(TOPIC, perf_counter() - started)
