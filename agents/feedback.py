"""Fraud feedback in: decode, then publish the label to every worker (see `app.labels`)."""

from __future__ import annotations

from time import perf_counter

from faust.types import StreamT

from agents.outputs import reject
from app.intake import FEEDBACK, Rejected
from app.labels import label_value
from app.main import app, metrics, settings, topics


@app.agent(topics.feedback, name="vigil-feedback")
async def relay_feedback(stream: StreamT) -> None:
    """Write each valid label to the compacted labels topic, in this record's transaction."""
    topic = settings.topic_feedback
    async for event in stream.events():
        started = perf_counter()
        message = event.message
        feedback = FEEDBACK(message.value, message.key)
        if isinstance(feedback, Rejected):
            await reject(message, feedback)
            continue
        await topics.fraud_labels.send(
            key=feedback.txn_id.encode(),
            value=label_value(feedback),
            partition=message.partition,
        )
        metrics.event_in(topic, "ok")
        metrics.observe_processing(topic, perf_counter() - started)
