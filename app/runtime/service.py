"""The running service's singletons: settings, the Faust app, its topics, metrics, transactions.

`tables/` and `agents/` import these; this module imports neither (the worker discovers them).
This is the one place the app is built from the settings: importing it (as the agents and
tables must, for Faust's decorators) reads them, and a bad value stops the process with one
line naming the setting and exit code 2, like `vigil` itself (which checks them first).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from app import faust_patches
from app.exceptions import ConfigError
from app.observe import web as observe
from app.observe.metrics import VigilMetrics
from app.runtime.faust_app import Topics, create_app
from app.runtime.partitions import PartitionTransactions
from app.settings import load_settings

log = logging.getLogger(__name__)

try:
    settings = load_settings()
except ConfigError as exc:
    print(f"vigil: bad setting {exc}", file=sys.stderr)
    raise SystemExit(2) from None
app = create_app(settings)
topics = Topics.declare(app, settings)
INPUT_TOPICS = (settings.topic_transactions, settings.topic_feedback, settings.topic_cart_events)
metrics = VigilMetrics(
    input_topics=INPUT_TOPICS, tables=("cards", "carts", "cart-clocks", "fraud-labels")
)

observe.install(app, metrics, settings.topic_cart_events, frozenset(INPUT_TOPICS))

#: Every owned partition's staged state and outputs, committed at each checkpoint.
transactions = PartitionTransactions(
    app,
    exactly_once=settings.processing_guarantee == "exactly_once",
    client_kwargs=settings.kafka_client_kwargs(),
    halt_timeout_s=settings.session_timeout_s,
)
faust_patches.install(transactions, settings.kafka_client_kwargs())
observe.add_readiness_check(
    app, "no partition halted by a refused checkpoint", lambda: transactions.healthy
)


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def _drop_transactions(sender: Any, revoked: Any, **kwargs: Any) -> None:
    # Sent after Faust waited for the agents and Vigil's checkpoint committed their work:
    # whatever is left belongs to partitions Faust will seek back to their committed offsets.
    transactions.drop_all()


@app.on_partitions_assigned.connect  # type: ignore[arg-type]
async def _check_table_partitions(sender: Any, assigned: Any, **kwargs: Any) -> None:
    # Sent once Faust's assignment callbacks (producers, table recovery set-up) have run.
    await transactions.halt_unserved()


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def _stop_producers(sender: Any, **kwargs: Any) -> None:
    await transactions.stop()


if settings.processing_guarantee == "at_least_once" and settings.output_flush_s > 0:

    @app.task
    async def _send_outputs_ahead() -> None:
        # at_least_once: alerts go out within VIGIL_OUTPUT_FLUSH_S, not at the next checkpoint
        # (which still waits for their acks before it commits: see send_ahead).
        interval = settings.output_flush_s
        while True:
            await asyncio.sleep(interval)
            try:
                await transactions.send_ahead()
            except Exception:  # the checkpoint fails for what could not be sent
                log.exception("sending outputs ahead of the checkpoint failed")
