"""Hand-made input stories that make every rule and cart path fire, for live-vs-replay tests.

Each function returns (topic_kind, key, value) records in the order they are produced.
"""

from __future__ import annotations

from typing import Any

from app.contract.timeutil import format_ts

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
S = 1000
MIN = 60 * S

Record = tuple[str, str, dict[str, Any]]


def txn(txn_id: str, card: str, amount: float | str, ts: int, **kw: Any) -> Record:
    value = {
        "txn_id": txn_id,
        "card_id": card,
        "amount": amount,
        "currency": "EUR",
        "merchant_id": kw.pop("merchant_id", "m-1"),
        "ts": format_ts(ts) if kw.pop("rfc", True) else ts,
        **kw,
    }
    return ("transactions", card, value)


def feedback_records() -> list[Record]:
    """Two fraud labels at terminal pos-9 (one first labelled legit, then fraud), one flipped off."""
    return [
        (
            "feedback",
            "f-1",
            {"txn_id": "f-1", "label": "legit", "terminal_id": "pos-9", "ts": T0 - 3 * 86_400_000},
        ),
        (
            "feedback",
            "f-1",
            {"txn_id": "f-1", "label": "fraud", "terminal_id": "pos-9", "ts": T0 - 2 * 86_400_000},
        ),
        (
            "feedback",
            "f-2",
            {
                "txn_id": "f-2",
                "label": "fraud",
                "terminal_id": "pos-9",
                "ts": format_ts(T0 - 86_400_000),
            },
        ),
        (
            "feedback",
            "f-3",
            {"txn_id": "f-3", "label": "fraud", "terminal_id": "pos-7", "ts": T0 - 86_400_000},
        ),
        (
            "feedback",
            "f-4",
            {"txn_id": "f-4", "label": "fraud", "terminal_id": "pos-7", "ts": T0 - 86_400_000},
        ),
        (
            "feedback",
            "f-4",
            {"txn_id": "f-4", "label": "legit", "terminal_id": "pos-7", "ts": T0 - 86_000_000},
        ),
    ]


def fraud_story() -> tuple[list[Record], list[Record]]:
    """Transactions in two halves: bursts and histories straddle the split (a restart)."""
    first: list[Record] = []
    second: list[Record] = []
    # velocity: 7 transactions in 50 s on card A, 3 before the split and 4 after
    for i in range(7):
        (first if i < 3 else second).append(txn(f"a-{i}", "card-A", 10 + i, T0 + i * 8 * S))
    second.append(txn("a-3", "card-A", 13, T0 + 3 * 8 * S))  # duplicate txn_id: ignored
    # amount_spike: 6 normal amounts then 500 (history before the split, spike after)
    for i, amount in enumerate([20, 22, 18, 21, 19, 20]):
        first.append(txn(f"b-{i}", "card-B", amount, T0 + i * 10 * MIN))
    second.append(txn("b-6", "card-B", "500.00", T0 + 70 * MIN))
    # impossible_travel: Paris, then New York 30 minutes later
    first.append(txn("c-0", "card-C", 30, T0, lat=48.857, lon=2.352, country="FR"))
    second.append(txn("c-1", "card-C", 30, T0 + 30 * MIN, lat=40.713, lon=-74.006, country="US"))
    # card_testing: 5 small amounts in 4 minutes (2.00 exactly counts), across the split
    for i, amount in enumerate(["1.00", "0.50", "2.00", "1.99", "0.01"]):
        (first if i < 2 else second).append(
            txn(f"d-{i}", "card-D", amount, T0 + i * MIN, rfc=False)
        )
    # large_amount
    second.append(txn("e-0", "card-E", 15000, T0))
    # compromised_terminal: pos-9 has 2 fraud labels within 28 days; pos-7 only 1 (f-4 flipped)
    second.append(txn("g-0", "card-G", 40, T0, terminal_id="pos-9"))
    second.append(txn("h-0", "card-H", 40, T0, terminal_id="pos-7"))
    # quiet cards: no alert
    for i in range(5):
        first.append(txn(f"q-{i}", f"card-Q{i}", 25, T0 + i * S))
    return first, second


def without_detected(alert: dict[str, Any]) -> dict[str, Any]:
    """An output without its wall-clock field, for comparing live with replay."""
    return {k: v for k, v in alert.items() if k != "detected_ts"}
