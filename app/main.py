"""The running service's singletons: settings, the Faust app, its topics and metrics.

`tables/` and `agents/` import these; this module imports neither (the worker discovers them).
Importing it reads the settings, so `app.cli` validates them first and exits 2 with one line
on a bad value before anything here runs.
"""

from __future__ import annotations

from app import observe, recovery
from app.exactly_once import CommitGate
from app.faust_app import Topics, create_app
from app.metrics import VigilMetrics
from app.settings import load_settings

settings = load_settings()
app = create_app(settings)
topics = Topics.declare(app, settings)
INPUT_TOPICS = (settings.topic_transactions, settings.topic_feedback, settings.topic_cart_events)
metrics = VigilMetrics(
    input_topics=INPUT_TOPICS, tables=("cards", "carts", "cart-clocks", "fraud-labels")
)

observe.install(
    app, metrics, settings.topic_cart_events, frozenset(INPUT_TOPICS), settings.store_dir
)

#: Agents process each event inside `gate.event()`; commits wait for whole events.
gate = CommitGate()
gate.install()
recovery.install(settings.kafka_client_kwargs())
