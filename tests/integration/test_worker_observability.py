"""A real Prometheus scrapes a real worker processing real events; every shipped query works.

The dashboard and the alerting rules are only useful if their PromQL returns data from what
a worker actually exports: this evaluates each expression through Prometheus' HTTP API and
requires every dashboard panel's targets to return series.
"""

from __future__ import annotations

import threading
import time

import pytest

from app.contract.timeutil import format_ts, now_ms
from tests.fixtures.prometheus import run_promtool
from tests.promql import dashboard_exprs, rules_exprs

pytestmark = pytest.mark.integration


def _traffic(deployment, stop: threading.Event) -> None:
    """Realistic mixed traffic stamped with the wall clock, until `stop`."""
    i = 0
    while not stop.is_set():
        t = now_ms()
        batch = [
            (
                "transactions",
                f"card-{i % 7}",
                {
                    "txn_id": f"t-{i}",
                    "card_id": f"card-{i % 7}",
                    "amount": 12000 if i % 3 == 0 else 20,
                    "currency": "EUR",
                    "merchant_id": "m-1",
                    "terminal_id": "pos-1",
                    "ts": format_ts(t),
                },
            ),
            ("transactions", "card-x", b"not json"),
            (
                "feedback",
                f"t-{i}",
                {"txn_id": f"t-{i}", "label": "fraud", "terminal_id": "pos-1", "ts": t},
            ),
            (
                "cart_events",
                f"u-{i}",
                {
                    "event_id": f"e-{i}",
                    "user_id": f"u-{i}",
                    "type": "add_to_cart",
                    "product_id": "sku-1",
                    "price": 9.5,
                    "currency": "EUR",
                    "ts": t,
                },
            ),
        ]
        if i >= 6:  # purchase after the 2 s timeout abandoned the cart: a recovery
            j = i - 6
            batch.append(
                (
                    "cart_events",
                    f"u-{j}",
                    {"event_id": f"p-{j}", "user_id": f"u-{j}", "type": "purchase", "ts": t},
                )
            )
        deployment.produce(batch)
        i += 1
        stop.wait(0.5)


def _series(text: str) -> set[str]:
    return {
        line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")
    }


def test_prometheus_scrapes_a_worker_and_every_query_returns(deployment, prometheus_server):
    worker = (
        deployment.worker(cart_timeout_s="2", cart_lateness_s="0.5", cart_tick_interval_s="0.5")
        .start()
        .wait_ready()
    )
    assert worker.http("/healthz")[0] == 200
    stop = threading.Event()
    producer = threading.Thread(target=_traffic, args=(deployment, stop), daemon=True)
    producer.start()
    try:
        prom = prometheus_server([f"127.0.0.1:{worker.port}"])
        prom.wait_for_target_up(timeout=30)
        prom.wait_for('sum(vigil_alerts_total{kind="cart_recovered"}) > 0', timeout=60)
        prom.wait_for("count(vigil_consumer_lag_messages) > 0", timeout=30)
        time.sleep(6)  # a few more scrapes, so every rate() has two points in its window

        failures = []
        for expr in rules_exprs():
            try:
                prom.query(expr.expr)
            except AssertionError as exc:
                failures.append(f"{expr.source}: {exc}")
        for expr in dashboard_exprs():
            try:
                result = prom.query(expr.expr)["result"]
            except AssertionError as exc:
                failures.append(f"{expr.source}: {exc}")
                continue
            if not result:
                failures.append(f"{expr.source}: no data for {expr.expr}")
        assert not failures, "\n".join(failures)

        fired = prom.query('sum by (rule) (vigil_alert_rules_total{rule="large_amount"})')["result"]
        assert float(fired[0]["value"][1]) > 0
        dead = prom.query("sum(vigil_dead_letters_total)")["result"]
        assert float(dead[0]["value"][1]) > 0
    finally:
        stop.set()
        producer.join(30)

    scrape = worker.metrics()
    lint = run_promtool("check", "metrics", stdin=scrape.encode())
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), (
        lint.stdout + lint.stderr
    )


def test_series_stay_bounded_after_ten_thousand_cards_and_users(deployment):
    worker = deployment.worker(cart_timeout_s="3600").start().wait_ready()
    t = now_ms()

    def load(start: int, count: int) -> None:
        deployment.produce(
            [
                (
                    "transactions",
                    f"card-{n}",
                    {
                        "txn_id": f"t-{n}",
                        "card_id": f"card-{n}",
                        "amount": 5,
                        "currency": "EUR",
                        "merchant_id": f"m-{n}",
                        "terminal_id": f"pos-{n}",
                        "ts": t + n,
                    },
                )
                for n in range(start, start + count)
            ]
            + [
                (
                    "cart_events",
                    f"u-{n}",
                    {
                        "event_id": f"e-{n}",
                        "user_id": f"u-{n}",
                        "type": "add_to_cart",
                        "product_id": f"sku-{n}",
                        "price": 1,
                        "currency": "EUR",
                        "ts": t + n,
                    },
                )
                for n in range(start, start + count)
            ]
        )

    load(0, 50)
    lag = f'vigil_consumer_lag_messages{{partition="1",topic="{deployment.topics["cart_events"]}"}}'
    deadline = time.monotonic() + 60
    while lag not in worker.metrics():  # the gauges refresh on a 5 s timer
        assert time.monotonic() < deadline, "lag gauge never appeared"
        time.sleep(1)
    before = _series(worker.metrics())
    load(50, 10_000)
    deadline = time.monotonic() + 120
    topic = deployment.topics["cart_events"]
    target = f'vigil_events_in_total{{outcome="ok",topic="{topic}"}} 10050.0'
    while target not in worker.metrics():
        assert time.monotonic() < deadline, "worker did not process the 10 000 users in time"
        time.sleep(1)
    time.sleep(6)
    after = _series(worker.metrics())
    assert after == before, f"new series: {sorted(after - before)[:10]}"
    assert not any("card-" in s or "u-" in s or "sku-" in s or "t-1" in s for s in after)
