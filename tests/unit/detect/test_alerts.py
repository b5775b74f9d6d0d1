from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from app.contract.events import Transaction
from app.detect.alerts import alert_id, build_alert, score
from app.detect.config import RULES, FraudConfig
from app.detect.hits import RuleHit
from tests.unit.detect.helpers import T0

MakeTxn = Callable[..., Transaction]


def hit(rule: str) -> RuleHit:
    return RuleHit(rule, "because", 1, 1)


def test_alert_id_is_deterministic_and_32_hex(make_txn: MakeTxn) -> None:
    txn = make_txn(txn_id="t-9f2", card_id="tok_4c1a", ts=T0)
    same = make_txn(txn_id="t-9f2", card_id="tok_4c1a", ts=T0, amount=99.0)
    assert alert_id(txn) == alert_id(same)
    assert alert_id(txn) == "230633466107b168ce80be71a1bb175f"
    assert len(alert_id(txn)) == 32 and int(alert_id(txn), 16) >= 0
    assert alert_id(make_txn(txn_id="t-9f2", card_id="tok_4c1a", ts=T0 + 1)) != alert_id(txn)
    assert alert_id(make_txn(txn_id="t-9f3", card_id="tok_4c1a", ts=T0)) != alert_id(txn)
    assert alert_id(make_txn(txn_id="t-9f2", card_id="tok_4c1b", ts=T0)) != alert_id(txn)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (["velocity"], 0.6),
        (["large_amount"], 0.4),
        (["velocity", "large_amount"], 0.76),
        (["amount_spike", "impossible_travel"], 0.85),
        (list(RULES), 0.9928),
        ([], 0.0),
    ],
)
def test_score(rules: list[str], expected: float, config: FraudConfig) -> None:
    assert score([hit(r) for r in rules], config) == expected


def test_score_stays_in_unit_range() -> None:
    config = FraudConfig(**{r + "_weight": 1.0 for r in RULES})  # type: ignore[arg-type]
    assert score([hit(r) for r in RULES], config) == 1.0


def test_build_alert_exact(make_txn: MakeTxn, config: FraudConfig) -> None:
    txn = make_txn(
        txn_id="t-9f2",
        card_id="tok_4c1a",
        amount=42.5,
        currency="EUR",
        merchant_id="m-77",
        ts=T0 + 250,
    )
    hits = [RuleHit("velocity", "7 transactions in 60 s (alert at 6)", 7, 6)]
    alert = build_alert(txn, hits, config, T0 + 263)
    assert alert == {
        "alert_id": alert_id(txn),
        "txn_id": "t-9f2",
        "card_id": "tok_4c1a",
        "amount": 42.5,
        "currency": "EUR",
        "merchant_id": "m-77",
        "event_ts": "2026-11-28T10:00:00.250Z",
        "detected_ts": "2026-11-28T10:00:00.263Z",
        "score": 0.6,
        "rules": [
            {
                "rule": "velocity",
                "reason": "7 transactions in 60 s (alert at 6)",
                "value": 7,
                "threshold": 6,
            }
        ],
    }
    assert orjson.loads(orjson.dumps(alert)) == alert
