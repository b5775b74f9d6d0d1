"""The risk model every worker holds (see `app.score.follower` for why a training topic).

Started with the worker: it loads `<store>/vigil/model/learner.snap` if there is one, follows
`<app_id>-model-training` from that offset, and the fraud agent scores with `model.learner`.
The worker is not ready, and the fraud agent holds its transactions, until the model has read
everything committed when it started (as with the fraud labels).
"""

from __future__ import annotations

from app.observe import web as observe
from app.runtime.faust_app import internal_topic
from app.runtime.service import app, metrics, settings
from app.runtime.store import vigil_dir
from app.score.follower import TRAINING_TOPIC_SUFFIX, ModelFollower

TRAINING_TOPIC = internal_topic(settings, TRAINING_TOPIC_SUFFIX)

model = ModelFollower(
    settings.bootstrap_servers,
    TRAINING_TOPIC,
    settings.score_config(),
    vigil_dir(settings.store_dir) / "model",
    metrics,
    snapshot_s=settings.model_snapshot_s,
    client_kwargs=settings.kafka_client_kwargs(),
)

observe.add_readiness_check(app, "risk model caught up", model.caught_up.is_set)
observe.add_model_view(app, lambda: model.learner.summary())


@app.task
async def follow_model() -> None:
    """Keep this worker's model current (and its snapshot saved) for as long as it runs."""
    await model.run()
