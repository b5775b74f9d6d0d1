"""The fixed label vocabularies and histogram buckets of Vigil's metrics (`app.observe.metrics`).

Every enum-like label is clamped to one of these tuples, anything else counts as `other`: the
series count stays bounded however many cards, users and ids pass.
"""

from __future__ import annotations

from app.detect.config import RULES as DETECTOR_RULES
from app.score.learner import LEARN_KINDS as _LEARN_KINDS

#: Label value used for anything outside a fixed vocabulary (keeps cardinality bounded).
OTHER = "other"

#: Outcome of one input record: processed, ignored as a duplicate, sent to dead letters, or
#: skipped as delivered a second time after a seek (taken once already).
OUTCOMES: tuple[str, ...] = ("ok", "duplicate", "dead_letter", "redelivered")

#: Kinds of output event Vigil emits.
ALERT_KINDS: tuple[str, ...] = ("fraud", "cart_abandoned", "cart_recovered")

#: Fraud rules (CONTRACT.md "Detection semantics"): the detector's own list, so a new rule
#: gets its label pre-initialised without a second edit here.
RULES: tuple[str, ...] = DETECTOR_RULES

#: Why a record went to dead letters: ``DecodeError.kind`` values (json, missing, field, type,
#: value), ``pan`` for a raw card number where a token belongs, ``internal`` for an unexpected
#: exception while processing a decoded record, and ``other`` for anything else. Never the
#: free-text error message.
DEAD_LETTER_REASONS: tuple[str, ...] = (
    "json",
    "missing",
    "key",
    "field",
    "type",
    "value",
    "pan",
    "internal",
    OTHER,
)

#: Event time to detection: 1 ms .. 10 min. The upper end is wide because event time includes
#: producer delay and consumer lag, which is exactly what this histogram should reveal.
DETECTION_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)

#: Wall time per input record: 50 us .. 5 s (a healthy record takes well under a millisecond;
#: the top buckets catch RocksDB stalls and GC pauses).
PROCESSING_BUCKETS: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

#: Risk scores (0..1) of scored transactions: most sit near 0, alerts near the top.
SCORE_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0)

#: What a label (or a label delay running out) taught the model: `app.score.learner`'s kinds
#: (fraud, late_fraud, legit, expired, unsampled, ignored, unknown).
LEARN_KINDS: tuple[str, ...] = _LEARN_KINDS
