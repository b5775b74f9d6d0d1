"""What the generator produces and how it is tuned: the record type and the probabilities.

Apart from the generator itself so callers (the demo, the benchmark, the tests) can name the
types and rates without reading the model that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal, NamedTuple

TopicKind = Literal["transactions", "feedback", "cart_events"]
TOPIC_KINDS: tuple[TopicKind, ...] = ("transactions", "feedback", "cart_events")

#: 2026-11-22T10:00:00Z: a fixed start makes a seed's output identical on every run and machine.
DEFAULT_START_MS = 1_795_341_600_000


class GeneratedRecord(NamedTuple):
    """One record for an input topic: `(topic_kind, key, value)`.

    `value` is a JSON-ready dict, or raw bytes for a deliberately malformed record (those must
    reach Kafka byte for byte, which a dict could not express).
    """

    kind: TopicKind
    key: str
    value: dict[str, Any] | bytes


@dataclass(frozen=True, slots=True)
class PatternRates:
    """Probability, per new transaction the generator decides on, of starting each fraud pattern.

    Defaults are small (about 0.45 % of transactions start an episode) so alerts stay the
    exception, as in real traffic, yet 20 000 records hold several episodes of every kind.
    """

    velocity: float = 0.001  # 6-9 online transactions on one card within ~30 s
    amount_spike: float = 0.001  # one amount far above a card's own history
    impossible_travel: float = 0.001  # a home purchase, then one >= 1500 km away minutes later
    card_testing: float = 0.0005  # 5-8 amounts <= 2.00 within 8 min, often then a cash-out
    large_amount: float = 0.0005  # one transaction of 10 000-25 000
    compromised_terminal: float = 0.0005  # 2-3 fraud labels for earlier txns at one terminal

    def scaled(self, factor: float) -> PatternRates:
        """Every rate times `factor` (the demo shows more fraud per minute than reality has)."""
        return replace(
            self, **{f.name: min(1.0, getattr(self, f.name) * factor) for f in fields(self)}
        )

    @property
    def total(self) -> float:
        """Probability that a transaction decision starts some pattern."""
        return sum(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True, slots=True)
class CartMix:
    """How shoppers behave. Session pacing scales with the cart timeout (see `TrafficGenerator`).

    `share` is the fraction of all records that are cart events; the session outcomes split
    sessions into purchased, abandoned and browse-only (the rest); `recover` is the fraction of
    abandoned carts whose user comes back within the recovery window and buys.
    """

    share: float = 0.35
    purchase: float = 0.45
    abandon: float = 0.30
    recover: float = 0.35
