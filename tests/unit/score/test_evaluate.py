"""`vigil evaluate`: the handbook's metrics on hand-checked cases, and the command end to end."""

from __future__ import annotations

import math

import orjson

from app.cli import main
from app.evaluate import (
    Row,
    auc_roc,
    average_precision,
    card_precision_at_k,
    run_evaluate,
    weekly_card_precision_at_k,
)
from tests.unit.detect.helpers import DAY, T0


def test_auc_and_average_precision_by_hand() -> None:
    scores, labels = [0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]
    assert auc_roc(scores, labels) == 0.75  # 3 of the 4 (fraud, legit) pairs in order
    assert math.isclose(average_precision(scores, labels), 0.5 * 1 + 0.5 * 2 / 3)
    assert auc_roc([0.5, 0.5], [1, 0]) == 0.5  # a tie counts half
    assert average_precision([0.5, 0.5], [1, 0]) == 0.5  # ties are one step
    assert math.isnan(auc_roc([0.1, 0.2], [0, 0]))


def test_card_precision_removes_cards_caught_on_earlier_days() -> None:
    rows = [
        Row("1", "A", T0, 1, 0.9),
        Row("2", "B", T0, 0, 0.8),
        Row("3", "A", T0 + DAY, 1, 0.9),  # caught yesterday: out of today's ranking
        Row("4", "B", T0 + DAY, 0, 0.5),
        Row("5", "C", T0 + DAY, 1, 0.4),
    ]
    assert card_precision_at_k(rows, 1) == 0.5  # day 1: A (fraud); day 2: B (legit)
    # per day and card: the max score and the max label over the card's transactions
    same_day = [Row("1", "A", T0, 0, 0.9), Row("2", "A", T0, 1, 0.1), Row("3", "B", T0, 0, 0.5)]
    assert card_precision_at_k(same_day, 1) == 1.0


def test_the_command_on_scores_and_on_alerts(tmp_path, capsys) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_bytes(
        b"".join(
            orjson.dumps(
                {"txn_id": f"t-{i}", "card_id": f"c-{i}", "ts": T0 + i, "fraud": int(i < 2)}
            )
            + b"\n"
            for i in range(10)
        )
    )
    scores = tmp_path / "scores.jsonl"
    scores.write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "topic": "txn-scores",
                    "key": f"c-{i}",
                    "value": {"txn_id": f"t-{i}", "score": 1 - i / 10, "rules": []},
                }
            )
            + b"\n"
            for i in range(10)
        )
    )
    result = run_evaluate(scores, labels)
    assert result["auc_roc"] == 1.0 and result["average_precision"] == 1.0
    assert result["card_precision_at_100"] == 0.02  # 2 fraud cards in one day's top 100
    alerts = tmp_path / "alerts.jsonl"  # alerts only: every other transaction scores 0
    alerts.write_bytes(
        orjson.dumps(
            {"alert_id": "a", "txn_id": "t-1", "score": 0.6, "rules": [{"rule": "velocity"}]}
        )
        + b"\n"
    )
    result = run_evaluate(alerts, labels)
    assert result["rules"]["velocity"] == {"fired": 1, "precision": 1.0, "recall": 0.5}
    assert result["alert_rate"] == 0.1
    assert main(["evaluate", str(scores), str(labels), "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "AUC ROC 1.0000" in out and "CP@2 1.0000" in out


def test_weekly_card_precision_starts_each_7_day_window_afresh() -> None:
    # card A is fraud every week: caught in week 1, it counts again in week 2 (not over both)
    rows = [Row(f"a{w}", "A", T0 + w * 7 * DAY, 1, 0.9) for w in range(2)]
    rows += [Row(f"b{w}", "B", T0 + w * 7 * DAY, 0, 0.1) for w in range(2)]
    assert card_precision_at_k(rows, k=1) == 0.5  # day 8: A already caught, B tops the day
    assert weekly_card_precision_at_k(rows, k=1) == 1.0
    assert math.isnan(weekly_card_precision_at_k([], k=1))


def test_until_keeps_transactions_before_it(tmp_path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_bytes(
        b"".join(
            orjson.dumps({"txn_id": f"t-{d}", "card_id": "c", "ts": T0 + d * DAY, "fraud": 0})
            + b"\n"
            for d in range(3)
        )
    )
    scores = tmp_path / "scores.jsonl"
    scores.write_bytes(b"")
    assert run_evaluate(scores, labels, until_ms=T0 + 2 * DAY)["transactions"] == 2
    assert (
        run_evaluate(scores, labels, since_ms=T0 + DAY, until_ms=T0 + 2 * DAY)["transactions"] == 1
    )
