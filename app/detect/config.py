"""Tunable numbers of the fraud rules, with the contract's defaults.

One frozen value object so that a detector's behaviour is fixed for its lifetime: the live worker
and `vigil replay` build it from the same settings and therefore make the same decisions. Field
names are flat (no nested mappings) so a settings layer can map each to an option or an
environment variable one to one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from app.exceptions import ConfigError

SECOND_MS = 1_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

# The six rules, in the fixed order an alert lists them (the contract's table order).
RULES: tuple[str, ...] = (
    "velocity",
    "amount_spike",
    "impossible_travel",
    "card_testing",
    "large_amount",
    "compromised_terminal",
)


@dataclass(frozen=True, slots=True)
class FraudConfig:
    """Thresholds, windows, state bounds and score weights of the fraud detector.

    Windows and lateness are in milliseconds of event time; amounts are in the transaction's own
    currency units (the rules do not convert currencies).
    """

    velocity_count: int = 6
    velocity_window_ms: int = 60 * SECOND_MS
    spike_min_prior: int = 5
    spike_stddevs: float = 4.0
    spike_mean_multiple: float = 3.0
    travel_min_km: float = 100.0
    travel_max_kmh: float = 1000.0
    card_testing_max_amount: float = 2.00
    card_testing_count: int = 5
    card_testing_window_ms: int = 600 * SECOND_MS
    large_amount: float = 10_000.0
    terminal_fraud_count: int = 2
    terminal_window_ms: int = 28 * DAY_MS
    duplicate_window_ms: int = 24 * HOUR_MS
    # How late (behind the newest ts already seen on the card) a transaction may arrive and still
    # be counted exactly by the windowed rules and the duplicate check. Later arrivals are still
    # evaluated and counted, against whatever state is left.
    max_disorder_ms: int = 600 * SECOND_MS
    # Hard cap on remembered txn ids (and on recent window entries) per card, so that a card
    # hammered by a bot cannot grow one table value without bound.
    max_ids_per_card: int = 10_000
    velocity_weight: float = 0.6
    amount_spike_weight: float = 0.5
    impossible_travel_weight: float = 0.7
    card_testing_weight: float = 0.6
    large_amount_weight: float = 0.4
    compromised_terminal_weight: float = 0.5

    def __post_init__(self) -> None:
        """Refuse values that would silently disable or invert a rule."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f.name, f"must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f.name, f"must be finite, got {value!r}")
            if f.name.endswith("_weight"):
                if not 0.0 <= value <= 1.0:
                    raise ConfigError(f.name, f"must be between 0 and 1, got {value!r}")
            elif f.name in ("max_disorder_ms", "card_testing_max_amount", "large_amount"):
                if value < 0:
                    raise ConfigError(f.name, f"must be >= 0, got {value!r}")
            elif f.name in ("spike_min_prior",):
                if value < 1:
                    raise ConfigError(f.name, f"must be >= 1, got {value!r}")
            elif value <= 0:
                raise ConfigError(f.name, f"must be > 0, got {value!r}")
        for name in (
            "velocity_count",
            "velocity_window_ms",
            "spike_min_prior",
            "card_testing_count",
            "card_testing_window_ms",
            "terminal_fraud_count",
            "terminal_window_ms",
            "duplicate_window_ms",
            "max_disorder_ms",
            "max_ids_per_card",
        ):
            value = getattr(self, name)
            if not isinstance(value, int):
                raise ConfigError(name, f"must be an integer, got {value!r}")

    @property
    def entry_retention_ms(self) -> int:
        """How far behind the newest ts a card keeps (ts, amount) entries for windowed rules.

        An arrival at most `max_disorder_ms` behind the newest ts looks back at most the widest
        window from its own ts, so entries older than that can never be counted again.
        """
        return max(self.velocity_window_ms, self.card_testing_window_ms) + self.max_disorder_ms

    @property
    def id_retention_ms(self) -> int:
        """How far behind the newest ts a card remembers txn ids for the duplicate check."""
        return self.duplicate_window_ms + self.max_disorder_ms

    def weight(self, rule: str) -> float:
        """The score weight of `rule` (one of `RULES`)."""
        weight: float = getattr(self, rule + "_weight")
        return weight
