from __future__ import annotations

from collections.abc import Callable

import pytest

from app.contract.events import Feedback, Transaction
from app.detect.config import FraudConfig
from app.detect.feedback import InMemoryFeedback
from app.detect.state import CardState
from app.detect.terminal import check_compromised_terminal
from tests.unit.detect.helpers import DAY, T0

MakeTxn = Callable[..., Transaction]


@pytest.fixture
def fb(config: FraudConfig) -> InMemoryFeedback:
    return InMemoryFeedback(config)


def label(
    store: InMemoryFeedback,
    txn_id: str,
    ts: int,
    label: str = "fraud",
    terminal_id: str | None = "pos-3",
    merchant_id: str | None = None,
) -> None:
    store.process(Feedback(txn_id, label, ts, terminal_id=terminal_id, merchant_id=merchant_id))  # type: ignore[arg-type]


def check(txn: Transaction, store: InMemoryFeedback, config: FraudConfig) -> object:
    return check_compromised_terminal(txn, CardState(), config, store.places)


def test_two_fraud_labels_fire_one_does_not(
    make_txn: MakeTxn, config: FraudConfig, fb: InMemoryFeedback
) -> None:
    txn = make_txn(terminal_id="pos-3", ts=T0)
    label(fb, "x1", T0 - DAY)
    assert check(txn, fb, config) is None
    label(fb, "x2", T0 - 2 * DAY)
    hit = check_compromised_terminal(txn, CardState(), config, fb.places)
    assert hit is not None
    assert (hit.rule, hit.value, hit.threshold) == ("compromised_terminal", 2, 2)
    assert hit.reason == (
        "2 transactions at terminal pos-3 labelled fraud in the last 28 days (alert at 2)"
    )


def test_window_boundaries(make_txn: MakeTxn, config: FraudConfig, fb: InMemoryFeedback) -> None:
    label(fb, "x1", T0)  # at ts: inside (ts - 28 d, ts]
    label(fb, "x2", T0 - 28 * DAY)  # exactly 28 days old: outside
    txn = make_txn(terminal_id="pos-3", ts=T0)
    assert check(txn, fb, config) is None
    label(fb, "x2", T0 - 28 * DAY + 1)  # re-labelled, now just inside
    assert check(txn, fb, config) is not None
    assert check(make_txn(terminal_id="pos-3", ts=T0 - 1), fb, config) is None  # x1 is later


def test_same_txn_labelled_twice_counts_once(
    make_txn: MakeTxn, config: FraudConfig, fb: InMemoryFeedback
) -> None:
    label(fb, "x1", T0 - DAY)
    label(fb, "x1", T0 - 2 * DAY)
    assert check(make_txn(terminal_id="pos-3", ts=T0), fb, config) is None


def test_flip_to_legit_removes(
    make_txn: MakeTxn, config: FraudConfig, fb: InMemoryFeedback
) -> None:
    label(fb, "x1", T0 - DAY)
    label(fb, "x2", T0 - DAY)
    txn = make_txn(terminal_id="pos-3", ts=T0)
    assert check(txn, fb, config) is not None
    label(fb, "x2", T0 - DAY, label="legit")
    assert check(txn, fb, config) is None


def test_relabel_to_another_terminal_moves(
    make_txn: MakeTxn, config: FraudConfig, fb: InMemoryFeedback
) -> None:
    label(fb, "x1", T0 - DAY)
    label(fb, "x2", T0 - DAY)
    label(fb, "x2", T0 - DAY, terminal_id="pos-9")
    assert check(make_txn(terminal_id="pos-3", ts=T0), fb, config) is None
    label(fb, "x3", T0 - DAY, terminal_id="pos-9")
    assert check(make_txn(terminal_id="pos-9", ts=T0), fb, config) is not None


def test_merchant_when_no_terminal(
    make_txn: MakeTxn, config: FraudConfig, fb: InMemoryFeedback
) -> None:
    label(fb, "x1", T0 - DAY, terminal_id=None, merchant_id="m-77")
    label(fb, "x2", T0 - DAY, terminal_id=None, merchant_id="m-77")
    hit = check_compromised_terminal(
        make_txn(merchant_id="m-77", ts=T0), CardState(), config, fb.places
    )
    assert hit is not None and "at merchant m-77 labelled" in hit.reason
    # A transaction with a terminal is judged by its terminal, not its merchant.
    assert check(make_txn(merchant_id="m-77", terminal_id="pos-1", ts=T0), fb, config) is None
    # A terminal and a merchant sharing an id are different places.
    assert check(make_txn(merchant_id="zz", terminal_id="m-77", ts=T0), fb, config) is None


def test_label_without_place_counts_nowhere_but_supersedes(
    make_txn: MakeTxn, config: FraudConfig, fb: InMemoryFeedback
) -> None:
    label(fb, "x1", T0 - DAY)
    label(fb, "x2", T0 - DAY)
    label(fb, "x2", T0 - DAY, terminal_id=None, merchant_id=None)
    assert check(make_txn(terminal_id="pos-3", ts=T0), fb, config) is None
