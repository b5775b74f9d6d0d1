"""VigilMetrics: the names, types and labels the dashboard and alerts rely on, valid exposition
text, and bounded cardinality (no id can become a label value)."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app.observe.metrics import (
    ALERT_KINDS,
    CONTENT_TYPE,
    DEAD_LETTER_REASONS,
    DETECTION_LATENCY_BUCKETS,
    OUTCOMES,
    PROCESSING_BUCKETS,
    RULES,
    VigilMetrics,
)

INPUT_TOPICS = ("transactions", "fraud-feedback", "cart-events")

# family name (as the parser reports it) -> (type, label names)
EXPECTED = {
    "vigil_events_in": ("counter", {"topic", "outcome"}),
    "vigil_dead_letters": ("counter", {"source_topic", "reason"}),
    "vigil_alerts": ("counter", {"kind"}),
    "vigil_alert_rules": ("counter", {"rule"}),
    "vigil_detection_latency_seconds": ("histogram", {"kind"}),
    "vigil_processing_seconds": ("histogram", {"topic"}),
    "vigil_consumer_lag_messages": ("gauge", {"topic", "partition"}),
    "vigil_table_keys": ("gauge", {"table"}),
    "vigil_open_carts": ("gauge", set()),
    "vigil_pending_timers": ("gauge", set()),
    "vigil_clock_lag_seconds": ("gauge", {"partition"}),
    "vigil_rebalances": ("counter", set()),
    "vigil_assigned_partitions": ("gauge", set()),
    "vigil_ready": ("gauge", set()),
    "vigil_build_info": ("gauge", {"version"}),
    "vigil_risk_scores": ("histogram", set()),
    "vigil_model_labels": ("counter", {"kind"}),
    "vigil_model_updates": ("counter", set()),
    "vigil_model_state_entries": ("gauge", set()),
    "vigil_model_offset": ("gauge", set()),
}

ID_LABELS = {"card_id", "user_id", "txn_id", "product_id", "event_id", "alert_id", "key"}


def families(m: VigilMetrics) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(m.render().decode())}


def samples(m: VigilMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """name is a sample name (e.g. vigil_events_in_total); key is the sorted label items."""
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def vigil_series_count(m: VigilMetrics) -> int:
    return sum(
        len(f.samples)
        for f in text_string_to_metric_families(m.render().decode())
        if f.name.startswith("vigil_")
    )


def exercised(m: VigilMetrics) -> VigilMetrics:
    m.event_in("transactions", "ok")
    m.event_in("transactions", "duplicate")
    m.event_in("cart-events", "dead_letter")
    m.dead_letter("cart-events", "json")
    m.observe_processing("transactions", 0.0004)
    with m.time_processing("fraud-feedback"):
        pass
    m.alert("fraud", ["velocity", "large_amount"], 0.012)
    m.alert("cart_abandoned", (), 10.4)
    m.alert("cart_recovered")
    m.set_consumer_lag("transactions", 0, 12)
    m.set_consumer_lag("transactions", 1, 0)
    m.set_table_keys("cards", 42)
    m.set_open_carts(3)
    m.set_pending_timers(3)
    m.set_clock_lag(0, 10.5)
    m.rebalance()
    m.set_assignment([("transactions", 0), ("transactions", 1), ("cart-events", 0)])
    m.set_ready(True)
    m.risk.score(0.93)
    m.risk.learned("fraud")
    m.risk.updates.inc()
    m.risk.set_state(12, 40)
    return m


@pytest.fixture
def metrics() -> VigilMetrics:
    return VigilMetrics(input_topics=INPUT_TOPICS, tables=("cards",), version="1.2.3")


def test_names_types_and_labels(metrics: VigilMetrics) -> None:
    fams = families(exercised(metrics))
    # prometheus_client also exposes each counter's and histogram's start time as a
    # <name>_created gauge in the text format; those are not ours to name.
    vigil = {
        name: fam
        for name, fam in fams.items()
        if name.startswith("vigil_") and not name.endswith("_created")
    }
    assert set(vigil) == set(EXPECTED)
    for name, (mtype, labels) in EXPECTED.items():
        fam = vigil[name]
        assert fam.type == mtype, name  # type: ignore[attr-defined]
        assert fam.documentation, f"{name} has no help text"  # type: ignore[attr-defined]
        for s in fam.samples:  # type: ignore[attr-defined]
            got = set(s.labels) - {"le"}
            assert got == labels, (name, s)
            assert not got & ID_LABELS


def test_fresh_registry_has_process_and_python_collectors() -> None:
    names = set(families(VigilMetrics()))
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= names
    assert any(n.startswith("python_gc_") for n in names)


def test_given_registry_gets_only_vigil_metrics() -> None:
    registry = CollectorRegistry()
    m = VigilMetrics(registry)
    assert m.registry is registry
    names = {f.name for f in text_string_to_metric_families(m.render().decode())}
    assert names and all(n.startswith("vigil_") for n in names)


def test_two_instances_do_not_collide() -> None:
    a, b = VigilMetrics(), VigilMetrics()
    a.event_in("transactions")
    assert samples(b, "vigil_events_in_total") == {}


def test_known_label_combinations_start_at_zero(metrics: VigilMetrics) -> None:
    events = samples(metrics, "vigil_events_in_total")
    assert events == {(("outcome", o), ("topic", t)): 0.0 for t in INPUT_TOPICS for o in OUTCOMES}
    assert samples(metrics, "vigil_alerts_total") == {(("kind", k),): 0.0 for k in ALERT_KINDS}
    assert samples(metrics, "vigil_alert_rules_total") == {(("rule", r),): 0.0 for r in RULES}
    assert len(samples(metrics, "vigil_dead_letters_total")) == len(INPUT_TOPICS) * len(
        DEAD_LETTER_REASONS
    )
    latency_counts = samples(metrics, "vigil_detection_latency_seconds_count")
    assert latency_counts == {(("kind", k),): 0.0 for k in ALERT_KINDS}
    assert samples(metrics, "vigil_processing_seconds_count") == {
        (("topic", t),): 0.0 for t in INPUT_TOPICS
    }
    assert samples(metrics, "vigil_table_keys") == {(("table", "cards"),): 0.0}
    assert samples(metrics, "vigil_build_info") == {(("version", "1.2.3"),): 1.0}
    assert samples(metrics, "vigil_ready") == {(): 0.0}


def test_buckets() -> None:
    assert DETECTION_LATENCY_BUCKETS[0] == 0.001 and DETECTION_LATENCY_BUCKETS[-1] == 600
    assert PROCESSING_BUCKETS[0] == 0.00005 and PROCESSING_BUCKETS[-1] == 5
    m = VigilMetrics()
    m.alert("fraud", (), 0.0)
    les = {dict(k)["le"] for k in samples(m, "vigil_detection_latency_seconds_bucket") if k}
    assert len(les) == len(DETECTION_LATENCY_BUCKETS) + 1  # + "+Inf"


def test_methods_count_what_they_say(metrics: VigilMetrics) -> None:
    exercised(metrics)
    events = samples(metrics, "vigil_events_in_total")
    assert events[(("outcome", "ok"), ("topic", "transactions"))] == 1
    assert events[(("outcome", "dead_letter"), ("topic", "cart-events"))] == 1
    dead = samples(metrics, "vigil_dead_letters_total")
    assert dead[(("reason", "json"), ("source_topic", "cart-events"))] == 1
    assert samples(metrics, "vigil_alerts_total")[(("kind", "fraud"),)] == 1
    rules = samples(metrics, "vigil_alert_rules_total")
    assert rules[(("rule", "velocity"),)] == 1 and rules[(("rule", "large_amount"),)] == 1
    assert rules[(("rule", "card_testing"),)] == 0
    lat = samples(metrics, "vigil_detection_latency_seconds_count")
    assert lat[(("kind", "fraud"),)] == 1
    assert lat[(("kind", "cart_recovered"),)] == 0  # no latency given
    proc = samples(metrics, "vigil_processing_seconds_count")
    assert proc[(("topic", "transactions"),)] == 1 and proc[(("topic", "fraud-feedback"),)] == 1
    assert (
        samples(metrics, "vigil_consumer_lag_messages")[
            (("partition", "0"), ("topic", "transactions"))
        ]
        == 12
    )
    assert samples(metrics, "vigil_clock_lag_seconds") == {(("partition", "0"),): 10.5}
    assert samples(metrics, "vigil_open_carts") == {(): 3}
    assert samples(metrics, "vigil_pending_timers") == {(): 3}
    assert samples(metrics, "vigil_rebalances_total") == {(): 1}
    assert samples(metrics, "vigil_assigned_partitions") == {(): 3}
    assert samples(metrics, "vigil_ready") == {(): 1}


def test_alert_counts_a_repeated_rule_once_and_clamps_negative_latency() -> None:
    m = VigilMetrics()
    m.alert("fraud", ["velocity", "velocity"], -3.0)
    assert samples(m, "vigil_alert_rules_total")[(("rule", "velocity"),)] == 1
    assert samples(m, "vigil_detection_latency_seconds_sum")[(("kind", "fraud"),)] == 0


def test_revoked_partitions_stop_reporting(metrics: VigilMetrics) -> None:
    metrics.set_consumer_lag("transactions", 0, 5)
    metrics.set_consumer_lag("transactions", 1, 7)
    metrics.set_clock_lag(0, 1.0)
    metrics.set_clock_lag(1, 2.0)
    metrics.set_assignment([("transactions", 1)])
    assert samples(metrics, "vigil_consumer_lag_messages") == {
        (("partition", "1"), ("topic", "transactions")): 7
    }
    assert samples(metrics, "vigil_clock_lag_seconds") == {(("partition", "1"),): 2.0}
    assert samples(metrics, "vigil_assigned_partitions") == {(): 1}


def test_clock_lag_follows_the_cart_topic_partitions(metrics: VigilMetrics) -> None:
    metrics.set_clock_lag(0, 1.0)
    metrics.set_clock_lag(1, 2.0)
    metrics.set_assignment([("transactions", 0), ("cart-events", 1)], clock_topic="cart-events")
    assert samples(metrics, "vigil_clock_lag_seconds") == {(("partition", "1"),): 2.0}


def test_rendering_is_valid_exposition_text(metrics: VigilMetrics) -> None:
    text = exercised(metrics).render()
    assert isinstance(text, bytes)
    assert CONTENT_TYPE.startswith("text/plain") and VigilMetrics.CONTENT_TYPE == CONTENT_TYPE
    fams = list(text_string_to_metric_families(text.decode()))  # raises on invalid text
    assert len(fams) > len(EXPECTED)
    assert text.endswith(b"\n")


def test_cardinality_is_bounded_whatever_ids_pass_through(metrics: VigilMetrics) -> None:
    """10 000 distinct ids in every string argument: the series count stays put.

    Each unknown value is counted under "other", so after the first stray value nothing grows.
    """

    def flood(n: int) -> None:
        for i in range(n):
            card = f"tok_{uuid.uuid4().hex}"
            user = f"u-{i}"
            metrics.event_in(card, user)
            metrics.event_in("transactions", card)
            metrics.observe_processing(user, 0.001)
            metrics.dead_letter(card, f"txn {card}: amount must be a number")
            metrics.alert(user, [card, "velocity"], 0.5)
            metrics.alert("fraud", [f"rule-{card}"], 0.5)

    exercised(metrics)
    flood(1)
    before = vigil_series_count(metrics)
    flood(10_000)
    assert vigil_series_count(metrics) == before
    labels = {
        v
        for fam in text_string_to_metric_families(metrics.render().decode())
        for s in fam.samples
        for v in s.labels.values()
    }
    assert not any(v.startswith(("tok_", "u-", "rule-", "txn ")) for v in labels)
    assert (
        samples(metrics, "vigil_events_in_total")[(("outcome", "other"), ("topic", "other"))]
        == 10_001
    )
