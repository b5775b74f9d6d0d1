"""Fraud feedback in: decode, then publish the label to every worker (see `app.runtime.labels`)."""

from __future__ import annotations

from time import perf_counter

from faust.types import Message, StreamT

from agents import loop
from app.contract.intake import FEEDBACK, Rejected
from app.runtime.labels import label_value
from app.runtime.service import app, metrics, settings, topics
from app.runtime.transactions import PartitionTransaction
from app.score.follower import label_record
from tables.model import TRAINING_TOPIC

TOPIC = settings.topic_feedback
LABELS = topics.fraud_labels.get_topic_name()


@app.agent(topics.feedback, name="vigil-feedback")
async def relay_feedback(stream: StreamT) -> None:
    """Write each valid label to the compacted labels topic and the training topic, in this
    record's transaction."""
    await loop.run(stream, _handle)


def _handle(txn: PartitionTransaction, message: Message) -> None:
    started = perf_counter()
    feedback = FEEDBACK(message.value, message.key)
    if isinstance(feedback, Rejected):
        loop.reject(txn, message, feedback)
        return
    key = feedback.txn_id.encode()
    txn.send(LABELS, key, label_value(feedback), message.partition)
    # ... and to the risk model's training stream, in the same transaction (app.score.follower).
    txn.send(TRAINING_TOPIC, key, label_record(feedback), 0)
    metrics.event_in(TOPIC, "ok")
    metrics.observe_processing(TOPIC, perf_counter() - started)
