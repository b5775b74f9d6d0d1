"""A real Prometheus scrapes VigilMetrics and evaluates every dashboard and rule expression.

No Kafka or worker here: VigilMetrics is served in-process with prometheus_client's own HTTP
server after a few observations. What this proves is that Prometheus accepts the exposition,
loads rules.yml, and parses and evaluates every PromQL expression Vigil ships (after Grafana's
variables are substituted) without an error. The full worker-to-dashboard test builds on the
same fixtures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import start_http_server

from app.observe.metrics import VigilMetrics
from tests.fixtures.prometheus import PrometheusFactory, PrometheusServer
from tests.promql import all_exprs, parse_rules

# Harmless if tests/conftest.py lists the plugin too: pytest registers a plugin module once.
pytest_plugins = ["tests.fixtures.prometheus"]

pytestmark = pytest.mark.integration

INPUT_TOPICS = ("transactions", "fraud-feedback", "cart-events")


@pytest.fixture(scope="module")
def served_metrics() -> Iterator[tuple[VigilMetrics, str]]:
    """VigilMetrics with some observations, served on a free loopback port."""
    m = VigilMetrics(input_topics=INPUT_TOPICS, tables=("cards", "carts"))
    for _ in range(5):
        m.event_in("transactions", "ok")
        m.observe_processing("transactions", 0.0004)
    m.event_in("transactions", "duplicate")
    m.event_in("cart-events", "dead_letter")
    m.dead_letter("cart-events", "json")
    m.alert("fraud", ["velocity", "card_testing"], 0.03)
    m.alert("cart_abandoned", (), 10.5)
    m.set_consumer_lag("transactions", 0, 4)
    m.set_consumer_lag("cart-events", 0, 0)
    m.set_table_keys("cards", 3)
    m.set_open_carts(1)
    m.set_pending_timers(1)
    m.set_clock_lag(0, 10.2)
    m.rebalance()
    m.set_assignment([("transactions", 0), ("cart-events", 0), ("fraud-feedback", 0)])
    m.set_ready(True)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=m.registry)
    port = server.server_address[1]
    try:
        yield m, f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def prometheus(
    prometheus_server: PrometheusFactory, served_metrics: tuple[VigilMetrics, str]
) -> PrometheusServer:
    _, target = served_metrics
    prom = prometheus_server([target])
    prom.wait_for_target_up(timeout=30)
    return prom


def test_target_is_scraped(
    prometheus: PrometheusServer, served_metrics: tuple[VigilMetrics, str]
) -> None:
    _, target = served_metrics
    result = prometheus.wait_for(f'vigil_build_info{{job="vigil", instance="{target}"}}')
    assert float(result[0]["value"][1]) == 1
    up = prometheus.query('up{job="vigil"}')["result"]
    assert [float(s["value"][1]) for s in up] == [1.0]
    # pre-initialised zeros are visible, not "no data"
    zeros = prometheus.query('vigil_alert_rules_total{rule="impossible_travel"}')["result"]
    assert [float(s["value"][1]) for s in zeros] == [0.0]


def test_every_shipped_expression_evaluates(prometheus: PrometheusServer) -> None:
    exprs = all_exprs()
    assert len(exprs) > 30
    failures = []
    for e in exprs:
        try:
            data = prometheus.query(e.expr)
        except AssertionError as exc:  # PrometheusError
            failures.append(f"{e.source}: {exc}")
            continue
        assert data["resultType"] in {"vector", "scalar", "matrix"}, e
    assert not failures, "\n".join(failures)


def test_prometheus_loaded_exactly_the_rules_the_extractor_sees(
    prometheus: PrometheusServer,
) -> None:
    """The test helper's rules.yml extractor agrees with Prometheus' own YAML parser."""
    extracted = {(r.group, r.name): r.expr for r in parse_rules()}
    # the API lists groups by name, rules within a group in file order
    loaded = {(r["group"], r["name"]): r["query"] for r in prometheus.rules()}
    assert sorted(loaded) == sorted(extracted)
    for key, ours in extracted.items():
        assert prometheus.format_query(ours) == prometheus.format_query(loaded[key]), key


def test_rules_evaluate_without_error(prometheus: PrometheusServer) -> None:
    deadline = time.monotonic() + 30
    rules = prometheus.rules()
    while time.monotonic() < deadline:
        rules = prometheus.rules()
        if all(r.get("health") == "ok" for r in rules):
            break
        bad = [r for r in rules if r.get("health") == "err"]
        assert not bad, [(r["name"], r.get("lastError")) for r in bad]
        time.sleep(0.5)
    assert all(r.get("health") == "ok" for r in rules), [
        (r["name"], r.get("health"), r.get("lastError")) for r in rules
    ]
    # the recording rules produce series from the scraped data
    recorded = prometheus.wait_for('job_topic:vigil_events_in:rate5m{topic="transactions"}')
    assert recorded[0]["metric"]["job"] == "vigil"
