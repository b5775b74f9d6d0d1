"""The Prometheus config, alert rules and Grafana dashboard are valid and agree with the code.

promtool checks the config and rules and runs the rule unit tests; its metrics linter checks
what VigilMetrics exposes; and every ``vigil_*`` name the dashboard or rules select must be a
series VigilMetrics really produces, so a renamed metric or a typo fails here rather than as an
empty panel or an alert that can never fire.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from app.observe.metrics import VigilMetrics
from tests.fixtures.prometheus import REPO_ROOT, run_promtool
from tests.promql import (
    DASHBOARD_PATH,
    RULES_PATH,
    dashboard_exprs,
    iter_panels,
    load_dashboard,
    parse_rules,
    recording_rule_names,
    rules_exprs,
    vigil_metric_names,
)

PROMETHEUS_YML = "deploy/prometheus/prometheus.yml"
RULES_YML = "deploy/prometheus/rules.yml"
RULES_TEST_YML = "deploy/prometheus/rules_test.yml"
PROVISIONING = REPO_ROOT / "deploy" / "grafana" / "provisioning"

EXPECTED_ALERTS = {
    "VigilWorkerDown",
    "VigilConsumerLagGrowing",
    "VigilDeadLetterRate",
    "VigilNoInput",
    "VigilDetectionLatencyP99High",
    "VigilNotReady",
    "VigilRebalanceStorm",
}


def _output(proc: object) -> str:
    return f"{proc.stdout}{proc.stderr}"  # type: ignore[attr-defined]


def observed_metrics() -> VigilMetrics:
    m = VigilMetrics(
        input_topics=("transactions", "fraud-feedback", "cart-events"), tables=("cards",)
    )
    m.event_in("transactions", "ok")
    m.event_in("transactions", "duplicate")
    m.event_in("cart-events", "dead_letter")
    m.dead_letter("cart-events", "json")
    m.observe_processing("transactions", 0.0003)
    m.alert("fraud", ["velocity", "amount_spike"], 0.02)
    m.alert("cart_abandoned", (), 10.2)
    m.alert("cart_recovered", (), 0.5)
    m.set_consumer_lag("transactions", 0, 3)
    m.set_table_keys("cards", 10)
    m.set_open_carts(2)
    m.set_pending_timers(2)
    m.set_clock_lag(0, 10.0)
    m.rebalance()
    m.set_assignment([("transactions", 0), ("cart-events", 0)])
    m.set_ready(True)
    return m


def exposed_sample_names() -> set[str]:
    text = observed_metrics().render().decode()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


# -- promtool --------------------------------------------------------------------------------


def test_promtool_check_config() -> None:
    proc = run_promtool("check", "config", PROMETHEUS_YML)
    assert proc.returncode == 0, _output(proc)
    assert "SUCCESS" in _output(proc)
    # rule_files is relative to prometheus.yml's directory and must have been found
    assert "1 rule files found" in _output(proc), _output(proc)


def test_promtool_check_rules() -> None:
    proc = run_promtool("check", "rules", RULES_YML)
    assert proc.returncode == 0, _output(proc)
    found = re.search(r"SUCCESS: (\d+) rules found", _output(proc))
    assert found, _output(proc)
    # the test helper's extractor sees exactly the rules promtool sees
    assert int(found.group(1)) == len(parse_rules())


def test_promtool_test_rules() -> None:
    proc = run_promtool("test", "rules", RULES_TEST_YML)
    assert proc.returncode == 0, _output(proc)
    assert "SUCCESS" in _output(proc)


def test_promtool_check_metrics_is_clean() -> None:
    proc = run_promtool("check", "metrics", stdin=observed_metrics().render())
    assert proc.returncode == 0, _output(proc)
    assert _output(proc).strip() == "", _output(proc)


# -- rules -----------------------------------------------------------------------------------


def test_rules_cover_every_alert_with_severity_and_annotations() -> None:
    text = RULES_PATH.read_text(encoding="utf-8")
    alerts = {r.name for r in parse_rules() if r.kind == "alert"}
    assert alerts == EXPECTED_ALERTS
    # each alert block has a severity and both annotations
    blocks = re.split(r"\n\s*- (?=alert:|record:)", text)
    for block in blocks:
        m = re.match(r"alert: (\w+)", block)
        if m:
            assert re.search(r"\n\s+severity: (critical|warning|info)\n", block), m.group(1)
            assert re.search(r"\n\s+summary: \S", block), m.group(1)
            assert re.search(r"\n\s+description: \S", block), m.group(1)


def test_rules_tests_cover_every_alert_firing_and_not_firing() -> None:
    text = (REPO_ROOT / RULES_TEST_YML).read_text(encoding="utf-8")
    # alertname lines followed by a non-empty or an empty expectation list
    cases = re.findall(r"alertname: (\w+)\n\s+exp_alerts:(\s*\[\])?", text)
    firing = {name for name, empty in cases if not empty}
    silent = {name for name, empty in cases if empty}
    assert firing == EXPECTED_ALERTS
    assert silent == EXPECTED_ALERTS


def test_recording_rules_referenced_are_defined() -> None:
    defined = {r.name for r in parse_rules() if r.kind == "record"}
    used: set[str] = set()
    for e in rules_exprs() + dashboard_exprs():
        used |= recording_rule_names(e.expr)
    assert used <= defined, used - defined


# -- dashboard -------------------------------------------------------------------------------


def test_dashboard_is_a_grafana_dashboard() -> None:
    dash = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
    assert dash["uid"] == "vigil-overview"
    assert 36 <= dash["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    inst = variables["instance"]
    assert inst["type"] == "query" and inst["includeAll"] is True
    assert inst["query"] == "label_values(vigil_build_info, instance)"
    assert inst["datasource"]["uid"] == "${datasource}"


def test_every_panel_has_a_query_and_uses_the_datasource_variable() -> None:
    dash = load_dashboard()
    panels = list(iter_panels(dash))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    data_panels = [p for p in panels if p["type"] != "row"]
    assert len(data_panels) >= 15
    for p in data_panels:
        assert p["type"] in {"timeseries", "stat"}, p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        targets = p.get("targets", [])
        assert targets and all(t.get("expr") for t in targets), p["title"]
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in targets:
            assert t["datasource"]["uid"] == "${datasource}", (p["title"], t["refId"])
            if re.search(r"\b(rate|increase)\(", t["expr"]):
                assert "[$__rate_interval]" in t["expr"], (p["title"], t["expr"])
            if "vigil_" in t["expr"] or "process_" in t["expr"] or "up{" in t["expr"]:
                assert 'instance=~"$instance"' in t["expr"], (p["title"], t["expr"])
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]


def test_dashboard_uids_are_unique() -> None:
    uids: list[str] = []
    for path in DASHBOARD_PATH.parent.glob("*.json"):
        uids.append(json.loads(path.read_text(encoding="utf-8"))["uid"])
    assert [u for u, n in Counter(uids).items() if n > 1] == []


def test_dashboard_shows_what_operators_need() -> None:
    exprs = " ".join(e.expr for e in dashboard_exprs())
    for needed in (
        "vigil_events_in_total",
        "vigil_alerts_total",
        "vigil_alert_rules_total",
        "vigil_dead_letters_total",
        "vigil_detection_latency_seconds_bucket",
        "vigil_processing_seconds_bucket",
        "vigil_consumer_lag_messages",
        "vigil_open_carts",
        "vigil_pending_timers",
        "vigil_clock_lag_seconds",
        "vigil_table_keys",
        "vigil_rebalances_total",
        "vigil_ready",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert needed in exprs, needed
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (kind, le)" in exprs


def test_every_referenced_vigil_metric_exists() -> None:
    exposed = exposed_sample_names()
    for e in dashboard_exprs() + rules_exprs():
        missing = vigil_metric_names(e.expr) - exposed
        assert not missing, f"{e.source} selects unknown series {sorted(missing)}: {e.raw}"
    # and the check itself can see a typo
    assert vigil_metric_names('rate(vigil_event_in_total{job="vigil_x"}[1m])') == {
        "vigil_event_in_total"
    }


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    ds = (PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    assert re.search(r"^apiVersion: 1$", ds, re.M)
    assert re.search(r"^\s+type: prometheus$", ds, re.M)
    prov = (PROVISIONING / "dashboards" / "vigil.yml").read_text(encoding="utf-8")
    assert re.search(r"^apiVersion: 1$", prov, re.M)
    assert re.search(r"^\s+type: file$", prov, re.M)
    assert re.search(r"^\s+path: /\S+$", prov, re.M)
