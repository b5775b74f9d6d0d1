"""The risk-scoring metrics (contract "Risk scoring"), registered by `VigilMetrics` as `.risk`.

Apart from `app.observe.metrics` to keep each module to one job; same rules: no id in a label,
fixed vocabularies, series created at start-up.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.observe.vocabulary import LEARN_KINDS, OTHER, SCORE_BUCKETS


class RiskMetrics:
    """Scores by bucket, what the model learned, its updates and its bounded state."""

    def __init__(self, registry: CollectorRegistry) -> None:
        """Register the series in `registry` (the worker's)."""
        r = registry
        self.scores = Histogram(
            "vigil_risk_scores",
            "Risk scores of scored transactions (txn-scores), by score bucket.",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.labels = Counter(
            "vigil_model_labels",
            "What the model learned from: fraud, late_fraud, legit, expired (no label within "
            "label_delay), unsampled (negatives not sampled), ignored, unknown (txn not held).",
            ["kind"],
            registry=r,
        )
        self.updates = Counter(
            "vigil_model_updates", "Examples the online model took a step on.", registry=r
        )
        self.state = Gauge(
            "vigil_model_state_entries",
            "Entries the learner holds: examples waiting for their label plus labels per "
            "place and card (bounded by label_delay + late labels and model_max_examples).",
            registry=r,
        )
        self.offset = Gauge(
            "vigil_model_offset",
            "Records of the training topic this worker's model has applied.",
            registry=r,
        )
        self._kinds = frozenset(LEARN_KINDS)
        self._label_children = {k: self.labels.labels(k) for k in (*LEARN_KINDS, OTHER)}

    def score(self, value: float) -> None:
        """Count one scored transaction's score."""
        self.scores.observe(value)

    def learned(self, kind: str, count: int = 1) -> None:
        """Count labels (or expiries) by what they did."""
        self._label_children[kind if kind in self._kinds else OTHER].inc(count)

    def set_state(self, entries: int, offset: int) -> None:
        """Set the learner's size and stream position."""
        self.state.set(entries)
        self.offset.set(offset)
