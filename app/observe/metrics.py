"""Vigil's Prometheus metrics, in one place.

Every worker exposes these series on ``/metrics``; ``deploy/prometheus/rules.yml`` and
``deploy/grafana/dashboards/vigil.json`` are written against exactly these names, and a unit
test fails if either references a ``vigil_*`` name this module does not produce.

Design rules, and why:

* No label ever carries a card, user, transaction or product id. Each distinct label value is a
  separate time series held in memory by every worker and by Prometheus; ids are unbounded, so
  one id-valued label would grow both without limit. Enum-like arguments (outcome, alert kind,
  rule, dead-letter reason) are therefore clamped to a fixed vocabulary, and anything outside it
  is counted under ``other`` instead of creating a new series. Topic names are clamped the same
  way when the input topics are known up front.
* Label combinations that are known at start-up are created at start-up, so a dashboard shows a
  flat zero ("nothing went wrong") rather than "no data" (which looks like a broken scrape), and
  ``rate()``/``increase()`` see the first increment instead of missing it.
* This module does not import faust: it is used by the offline ``replay`` command and by unit
  tests, and it must stay cheap to import.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from app.observe.scoring import RiskMetrics
from app.observe.vocabulary import (
    ALERT_KINDS,
    DEAD_LETTER_REASONS,
    DETECTION_LATENCY_BUCKETS,
    OTHER,
    OUTCOMES,
    PROCESSING_BUCKETS,
    RULES,
)

__all__ = [
    "ALERT_KINDS",
    "CONTENT_TYPE",
    "DEAD_LETTER_REASONS",
    "DETECTION_LATENCY_BUCKETS",
    "OTHER",
    "OUTCOMES",
    "PROCESSING_BUCKETS",
    "RULES",
    "VigilMetrics",
]

#: Content-Type header to serve ``VigilMetrics.render()`` with.
CONTENT_TYPE: str = CONTENT_TYPE_LATEST


def _package_version() -> str:
    """Installed version of the ``vigil`` distribution, for ``vigil_build_info``."""
    try:
        return metadata.version("vigil")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _clamp(value: str, allowed: frozenset[str]) -> str:
    """Return `value` if it is in the vocabulary, else ``other`` (bounded cardinality)."""
    return value if value in allowed else OTHER


class VigilMetrics:
    """All of one worker's metrics, registered in one registry.

    Each worker (and each test) makes its own instance: with ``registry=None`` a fresh
    ``CollectorRegistry`` is created, so two instances never collide on names (prometheus_client
    raises on duplicate registration in one registry). That fresh registry also gets the
    standard process, platform and GC collectors so ``process_*`` and ``python_*`` series exist
    (the dashboard's CPU and memory panels use them). When a registry is passed in, nothing but
    Vigil's own metrics is added to it, because the caller's registry (for example the
    prometheus_client default ``REGISTRY``) may already hold those collectors.

    Methods are small and cheap because they run once per input record.
    """

    CONTENT_TYPE: str = CONTENT_TYPE

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        input_topics: Sequence[str] = (),
        tables: Sequence[str] = (),
        version: str | None = None,
    ) -> None:
        """Create and register every metric and pre-initialise known label combinations.

        `input_topics`: the topic names this worker consumes. Their ``topic`` x ``outcome``,
        processing-time and dead-letter series start at zero, and any other topic name passed
        to the per-record methods is counted as ``other``. Empty (the default) means topic
        names are used as given. `tables`: table names whose key-count gauge starts at zero.
        `version`: the ``vigil_build_info`` label; defaults to the installed package version.
        """
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry: CollectorRegistry = registry
        self.input_topics: tuple[str, ...] = tuple(dict.fromkeys(input_topics))
        self._topics: frozenset[str] = frozenset(self.input_topics)
        self._outcomes = frozenset(OUTCOMES)
        self._kinds = frozenset(ALERT_KINDS)
        self._rules = frozenset(RULES)
        self._reasons = frozenset(DEAD_LETTER_REASONS)

        r = registry
        self.events_in = Counter(
            "vigil_events_in",
            "Input records consumed, by topic and outcome (ok, duplicate, dead_letter).",
            ["topic", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "vigil_dead_letters",
            "Input records written to the dead-letter topic, by source topic and reason kind.",
            ["source_topic", "reason"],
            registry=r,
        )
        self.alerts = Counter(
            "vigil_alerts",
            "Output events emitted, by kind (fraud, cart_abandoned, cart_recovered).",
            ["kind"],
            registry=r,
        )
        self.alert_rules = Counter(
            "vigil_alert_rules",
            "Fraud rules that fired, one per rule per alert (an alert may fire several rules).",
            ["rule"],
            registry=r,
        )
        self.detection_latency = Histogram(
            "vigil_detection_latency_seconds",
            "Event time (or cart deadline) to detection wall time, by output kind.",
            ["kind"],
            buckets=DETECTION_LATENCY_BUCKETS,
            registry=r,
        )
        self.processing = Histogram(
            "vigil_processing_seconds",
            "Wall time spent processing one input record, by topic.",
            ["topic"],
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "vigil_consumer_lag_messages",
            "Messages not yet committed: partition end offset minus committed offset.",
            ["topic", "partition"],
            registry=r,
        )
        self.table_keys = Gauge(
            "vigil_table_keys",
            "Keys held locally in a state table (active partitions of this worker).",
            ["table"],
            registry=r,
        )
        self.open_carts = Gauge(
            "vigil_open_carts",
            "Non-empty carts held by this worker.",
            registry=r,
        )
        self.pending_timers = Gauge(
            "vigil_pending_timers",
            "Cart-abandonment deadlines waiting to fire on this worker.",
            registry=r,
        )
        self.clock_lag = Gauge(
            "vigil_clock_lag_seconds",
            "Wall clock now minus the cart clock (watermark) of a partition.",
            ["partition"],
            registry=r,
        )
        self.rebalances = Counter(
            "vigil_rebalances",
            "Consumer-group rebalances this worker went through.",
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "vigil_assigned_partitions",
            "Input partitions currently assigned to this worker.",
            registry=r,
        )
        self.ready = Gauge(
            "vigil_ready",
            "1 when the worker has recovered its tables and is processing, else 0.",
            registry=r,
        )
        self.build_info = Gauge(
            "vigil_build_info",
            "Always 1; the version label says which Vigil build this worker runs.",
            ["version"],
            registry=r,
        )
        self.build_info.labels(version or _package_version()).set(1)
        #: Risk scoring: scores by bucket, labels learned, model updates, learner size.
        self.risk = RiskMetrics(r)

        # Child caches: ``.labels()`` takes a lock and builds a key tuple; the per-record
        # methods look children up here instead.
        self._events_in_children: dict[tuple[str, str], Counter] = {}
        self._processing_children: dict[str, Histogram] = {}

        for topic in self.input_topics:
            for outcome in OUTCOMES:
                self._event_child(topic, outcome)
            self._processing_child(topic)
            for reason in DEAD_LETTER_REASONS:
                self.dead_letters.labels(topic, reason)
        for kind in ALERT_KINDS:
            self.alerts.labels(kind)
            self.detection_latency.labels(kind)
        for rule in RULES:
            self.alert_rules.labels(rule)
        for table in tables:
            self.table_keys.labels(table).set(0)
        self._lag_keys: set[tuple[str, str]] = set()
        self._clock_partitions: set[str] = set()

    # -- label hygiene -----------------------------------------------------------------------

    def _topic(self, topic: str) -> str:
        """Clamp a topic name to the configured input topics (if any were configured)."""
        if not self._topics or topic in self._topics:
            return topic
        return OTHER

    def _event_child(self, topic: str, outcome: str) -> Counter:
        key = (topic, outcome)
        child = self._events_in_children.get(key)
        if child is None:
            child = self._events_in_children[key] = self.events_in.labels(topic, outcome)
        return child

    def _processing_child(self, topic: str) -> Histogram:
        child = self._processing_children.get(topic)
        if child is None:
            child = self._processing_children[topic] = self.processing.labels(topic)
        return child

    # -- per-record (hot path) ---------------------------------------------------------------

    def event_in(self, topic: str, outcome: str = "ok") -> None:
        """Count one consumed input record with its outcome (ok, duplicate, dead_letter)."""
        self._event_child(self._topic(topic), _clamp(outcome, self._outcomes)).inc()

    def observe_processing(self, topic: str, seconds: float) -> None:
        """Record the wall time one input record of `topic` took to process."""
        self._processing_child(self._topic(topic)).observe(max(seconds, 0.0))

    @contextmanager
    def time_processing(self, topic: str) -> Iterator[None]:
        """Context manager form of `observe_processing` (times the block, even if it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_processing(topic, time.perf_counter() - start)

    def dead_letter(self, source_topic: str, reason: str) -> None:
        """Count one record sent to dead letters.

        `reason` is a short kind (``DecodeError.kind``: json, missing, field, type, value; or
        internal), never the error text; unknown kinds count as ``other``. This does not count
        the record in ``vigil_events_in_total``: call ``event_in(topic, "dead_letter")`` too.
        """
        self.dead_letters.labels(self._topic(source_topic), _clamp(reason, self._reasons)).inc()

    def alert(self, kind: str, rules: Iterable[str] = (), latency_s: float | None = None) -> None:
        """Count one emitted output event, the rules that fired it, and its detection latency.

        `kind` is fraud, cart_abandoned or cart_recovered. `rules` (fraud only) are counted
        once each even if repeated. `latency_s` is detection wall time minus event time (for
        abandonment: minus the deadline); negative values, from producer clocks ahead of ours,
        are recorded as 0 so the histogram's sum stays meaningful. None skips the histogram.
        """
        kind = _clamp(kind, self._kinds)
        self.alerts.labels(kind).inc()
        for rule in dict.fromkeys(_clamp(r, self._rules) for r in rules):
            self.alert_rules.labels(rule).inc()
        if latency_s is not None:
            self.detection_latency.labels(kind).observe(max(latency_s, 0.0))

    # -- periodic / lifecycle ----------------------------------------------------------------

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        """Set one partition's lag (end offset minus committed offset; never below 0).

        The topic is not clamped: any topic this worker consumes may be reported (changelog
        topics included), and the series are bounded by the partitions it is assigned.
        """
        key = (topic, str(partition))
        self._lag_keys.add(key)
        self.consumer_lag.labels(*key).set(max(lag, 0))

    def set_table_keys(self, table: str, keys: int) -> None:
        """Set the number of keys a table holds locally."""
        self.table_keys.labels(table).set(keys)

    def set_open_carts(self, n: int) -> None:
        """Set the number of non-empty carts this worker holds."""
        self.open_carts.set(n)

    def set_pending_timers(self, n: int) -> None:
        """Set the number of abandonment deadlines waiting to fire."""
        self.pending_timers.set(n)

    def set_clock_lag(self, partition: int, seconds: float) -> None:
        """Set wall-clock-now minus the cart clock of `partition`."""
        key = str(partition)
        self._clock_partitions.add(key)
        self.clock_lag.labels(key).set(seconds)

    def rebalance(self) -> None:
        """Count one rebalance."""
        self.rebalances.inc()

    def set_assignment(
        self, partitions: Iterable[tuple[str, int]], *, clock_topic: str | None = None
    ) -> None:
        """Record the partitions assigned after a rebalance.

        Sets ``vigil_assigned_partitions`` and removes the lag and clock-lag series of
        partitions this worker no longer owns, so a revoked partition does not keep reporting
        a stale value (another worker now reports it; two values would double-count lag).
        `clock_topic` is the cart-events topic whose partitions carry a cart clock; without it,
        a clock-lag series is kept while any topic's partition of that number is assigned.
        """
        assigned = {(topic, str(p)) for topic, p in partitions}
        self.assigned_partitions.set(len(assigned))
        for key in self._lag_keys - assigned:
            self.consumer_lag.remove(*key)
        self._lag_keys &= assigned
        still = {p for t, p in assigned if clock_topic is None or t == clock_topic}
        for p in self._clock_partitions - still:
            self.clock_lag.remove(p)
        self._clock_partitions &= still

    def set_ready(self, ready: bool) -> None:
        """Set ``vigil_ready`` to 1 (processing) or 0 (starting, recovering, stopping)."""
        self.ready.set(1 if ready else 0)

    # -- exposition --------------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in Prometheus text format, to serve with `CONTENT_TYPE`."""
        return generate_latest(self.registry)
