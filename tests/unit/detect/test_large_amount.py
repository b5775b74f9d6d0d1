from __future__ import annotations

from collections.abc import Callable

import pytest

from app.contract.events import Transaction
from app.detect.config import FraudConfig
from app.detect.large_amount import check_large_amount
from app.detect.state import CardState

MakeTxn = Callable[..., Transaction]


@pytest.mark.parametrize(("amount", "fires"), [(10_000.0, True), (9_999.99, False), (1e9, True)])
def test_boundary(make_txn: MakeTxn, config: FraudConfig, amount: float, fires: bool) -> None:
    hit = check_large_amount(make_txn(amount=amount), CardState(), config)
    assert (hit is not None) is fires


def test_hit_fields(make_txn: MakeTxn, config: FraudConfig) -> None:
    hit = check_large_amount(make_txn(amount=12_000.5, currency="USD"), CardState(), config)
    assert hit is not None
    assert (hit.rule, hit.value, hit.threshold) == ("large_amount", 12_000.5, 10_000.0)
    assert hit.reason == "amount 12000.50 USD (alert at 10000.00)"
