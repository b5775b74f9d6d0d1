"""Fraud feedback in: decode, then publish the label to every worker (see `app.labels`)."""

from __future__ import annotations

from time import perf_counter

from faust.types import EventT, StreamT

from agents.outputs import process_each, reject
from app.intake import FEEDBACK, Rejected
from app.labels import label_value
from app.main import app, metrics, settings, topics

TOPIC = settings.topic_feedback


@app.agent(topics.feedback, name="vigil-feedback")
async def relay_feedback(stream: StreamT) -> None:
    """Write each valid label to the compacted labels topic, in this record's transaction."""
    await process_each(stream, _handle)


async def _handle(event: EventT) -> None:
    started = perf_counter()
    message = event.message
    feedback = FEEDBACK(message.value, message.key)
    if isinstance(feedback, Rejected):
        await reject(message, feedback)
        return
    await topics.fraud_labels.send(
        key=feedback.txn_id.encode(), value=label_value(feedback), partition=message.partition
    )
    metrics.event_in(TOPIC, "ok")
    metrics.observe_processing(TOPIC, perf_counter() - started)
