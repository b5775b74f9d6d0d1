"""Tunable numbers of risk scoring, with the contract's defaults (see `app.settings`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from app.exceptions import ConfigError

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    """How the online model learns and when its score raises an alert.

    - `label_delay_ms`: a transaction with no fraud label this long (event time) after it is a
      negative (contract default 7 days);
    - `late_label_ms`: how long after that its features are still kept, so that a late fraud
      label (a chargeback) is learned as a positive; later ones are counted, not learned;
    - `alert_threshold`: a score at or above it raises an alert on its own;
    - `min_fraud_labels`: the model's score replaces the rules' weight once it has learned this
      many frauds (before that it knows too little to rank);
    - `learning_rate`: AdaGrad's step size; `l2`: weight decay per update;
    - `negative_sample`: the fraction of negatives learned from (chosen by a hash of the
      txn_id, the same on every worker); the score corrects for it, so it stays a probability;
    - `max_examples`: hard cap on transactions whose features are held (oldest go first).
    """

    label_delay_ms: int = 7 * DAY_MS
    late_label_ms: int = 7 * DAY_MS
    alert_threshold: float = 0.8
    min_fraud_labels: int = 50
    learning_rate: float = 0.05
    l2: float = 1e-5
    negative_sample: float = 0.25
    max_examples: int = 1_000_000

    def __post_init__(self) -> None:
        """Refuse values that would disable learning or make the score meaningless."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f.name, f"must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f.name, f"must be finite, got {value!r}")
            if value < 0:
                raise ConfigError(f.name, f"must be >= 0, got {value!r}")
        if not 0.0 < self.negative_sample <= 1.0:
            raise ConfigError("negative_sample", f"must be in (0, 1], got {self.negative_sample}")
        if not 0.0 <= self.alert_threshold <= 1.0:
            raise ConfigError("alert_threshold", f"must be in [0, 1], got {self.alert_threshold}")
        if self.learning_rate <= 0:
            raise ConfigError("learning_rate", f"must be > 0, got {self.learning_rate}")
        if self.label_delay_ms <= 0:
            raise ConfigError("label_delay_ms", f"must be > 0, got {self.label_delay_ms}")
        if self.max_examples < 1:
            raise ConfigError("max_examples", f"must be >= 1, got {self.max_examples}")
