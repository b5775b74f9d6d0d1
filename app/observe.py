"""What a worker shows about itself: /metrics, /healthz, /readyz and periodic gauges.

Installed on the app by `app.main`. Gauges that cost a scan (lag, table sizes) are refreshed on
a timer, not per event; counters on the hot path live in the agents (`VigilMetrics` methods).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View

from app.metrics import VigilMetrics
from app.store_guard import remember_transactional_ids

log = logging.getLogger(__name__)

GAUGE_INTERVAL_S = 5.0


def is_ready(app: faust.App) -> bool:
    """Partitions assigned (or none to own) and tables recovered: fit to take traffic."""
    consumer = app._consumer  # type: ignore[attr-defined]
    if consumer is None or app.rebalancing:
        return False
    recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
    return bool(recovery.completed.is_set()) and not recovery.in_recovery


def install(
    app: faust.App,
    metrics: VigilMetrics,
    cart_topic: str,
    input_topics: frozenset[str],
    store_dir: Path | None = None,
) -> None:
    """Register the web views, the gauge timer and the rebalance counters on `app`."""

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses a charset inside content_type; Prometheus needs only the version.
            return self.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    class Healthz(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Readyz(View):
        async def get(self, request: Request) -> Response:
            ready = is_ready(app)
            metrics.set_ready(ready)
            return self.json(
                {"ready": ready, "partitions": len(app.consumer.assignment()) if ready else 0},
                status=200 if ready else 503,
            )

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        metrics.rebalance()
        metrics.set_ready(False)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def _assigned(sender: Any, **kwargs: Any) -> None:
        if app.in_transaction and store_dir is not None:
            consumer: Any = app.consumer
            ids = consumer.transactions._tps_to_transactional_ids(consumer.assignment())
            remember_transactional_ids(store_dir, list(ids))
        metrics.set_assignment(
            ((tp.topic, tp.partition) for tp in app.consumer.assignment()),
            clock_topic=cart_topic,
        )

    @app.timer(interval=GAUGE_INTERVAL_S)
    async def refresh_gauges() -> None:
        metrics.set_ready(is_ready(app))
        if app.rebalancing:
            return
        await _refresh_lag(app, metrics, input_topics)
        for table in app.tables.values():
            keys = _estimate_keys(table)
            metrics.set_table_keys(table.name, keys)
            if table.name == "carts":
                metrics.set_open_carts(keys)


async def _refresh_lag(app: faust.App, metrics: VigilMetrics, topics: frozenset[str]) -> None:
    """Lag per assigned input partition: end offset minus committed offset.

    Only the contract's input topics: internal topics (ticks, Faust's assignor topic) would add
    series that say nothing to an operator.
    """
    consumer: Any = app.consumer
    tps = [tp for tp in consumer.assignment() if tp.topic in topics]
    if not tps:
        return
    try:
        ends = await consumer.highwaters(*tps)
    except Exception as exc:  # the broker may be away for a moment: try next time
        log.debug("lag refresh failed: %s", exc)
        return
    committed = consumer._committed_offset
    for tp in tps:
        end = ends.get(tp)
        if end is None:
            continue
        done = committed.get(tp)
        metrics.set_consumer_lag(tp.topic, tp.partition, end - (done or 0))


def _estimate_keys(table: Any) -> int:
    """Keys held locally, from RocksDB's own estimate (no scan): good enough for a gauge."""
    total = 0
    store = table.data
    for db in getattr(store, "_dbs", {}).values():
        try:
            total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        except Exception:
            continue
    return total
