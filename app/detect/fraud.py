"""The fraud detector: one transaction plus the card's state in, an outcome and an alert out.

Pure and synchronous, so the live Faust agent and `vigil replay` call the very same code: the
agent owns the tables and Kafka, this owns the decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.contract.events import Transaction
from app.detect.alerts import build_alert
from app.detect.amount_spike import check_amount_spike
from app.detect.card_testing import check_card_testing
from app.detect.config import FraudConfig
from app.detect.hits import RuleHit
from app.detect.large_amount import check_large_amount
from app.detect.state import CardState
from app.detect.terminal import PlaceLookup, check_compromised_terminal
from app.detect.travel import check_impossible_travel
from app.detect.velocity import check_velocity

Outcome = Literal["ok", "duplicate"]


@dataclass(frozen=True, slots=True)
class Detection:
    """What processing one transaction produced.

    `state` is the card's state to store (for a duplicate, the very object passed in, unchanged);
    `alert` is the `fraud-alerts` value, or None when no rule fired or the txn was a duplicate.
    """

    outcome: Outcome
    state: CardState
    alert: dict[str, Any] | None


class FraudDetector:
    """Runs the six rules of the contract on each transaction of a card, in arrival order."""

    __slots__ = ("config",)

    def __init__(self, config: FraudConfig | None = None) -> None:
        """Use `config` (the contract's defaults when None) for every decision."""
        self.config = config if config is not None else FraudConfig()

    def process(
        self,
        txn: Transaction,
        state: CardState | None,
        places: PlaceLookup,
        detected_ms: int,
    ) -> Detection:
        """Detect on `txn` against the card's state, then count it into that state.

        `state` is None for a card never seen; otherwise it is updated in place (and returned),
        so the caller must not keep using it as the "before" state. Every rule sees the state
        before this transaction. `detected_ms` only stamps the alert's `detected_ts`.
        """
        config = self.config
        if state is None:
            state = CardState()
        elif state.is_duplicate(txn.txn_id, txn.ts, config.duplicate_window_ms):
            return Detection("duplicate", state, None)

        hits = self.hits(txn, state, places)
        state.add(txn, config)
        alert = build_alert(txn, hits, config, detected_ms) if hits else None
        return Detection("ok", state, alert)

    def hits(self, txn: Transaction, state: CardState, places: PlaceLookup) -> list[RuleHit]:
        """The rules that fire on `txn` against the card's state before it (in the fixed order).

        Also what risk scoring (`app.score.scorer`) reads before it counts the transaction in.
        """
        config = self.config
        hits: list[RuleHit] = []
        for hit in (
            check_velocity(txn, state, config),
            check_amount_spike(txn, state, config),
            check_impossible_travel(txn, state, config),
            check_card_testing(txn, state, config),
            check_large_amount(txn, state, config),
            check_compromised_terminal(txn, state, config, places),
        ):
            if hit is not None:
                hits.append(hit)
        return hits
