"""The fraud labels every worker holds (see `app.runtime.labels` for why not a GlobalTable)."""

from __future__ import annotations

from app.observe import web as observe
from app.runtime.faust_app import FRAUD_LABELS_TOPIC_SUFFIX, internal_topic
from app.runtime.labels import LabelFollower
from app.runtime.service import app, metrics, settings

labels = LabelFollower(
    settings.bootstrap_servers,
    internal_topic(settings, FRAUD_LABELS_TOPIC_SUFFIX),
    settings.fraud_config(),
    metrics,
    partitions=settings.partitions,
    client_kwargs=settings.kafka_client_kwargs(),
)

# A worker that has not caught up with the labels holds its transactions: not ready.
observe.add_readiness_check(app, "fraud labels caught up", labels.caught_up.is_set)


@app.task
async def follow_labels() -> None:
    """Keep this worker's copy of the labels current for as long as it runs."""
    await labels.run()
