from __future__ import annotations

from collections.abc import Callable

import pytest

from app.contract.events import Transaction
from app.detect.codec import StateFormatError
from app.detect.config import FraudConfig
from app.detect.feedback import InMemoryPlaces
from app.detect.fraud import FraudDetector
from app.detect.state import CardState
from tests.unit.detect.helpers import DAY, HOUR, MIN, T0, S, state_of

MakeTxn = Callable[..., Transaction]


def test_empty_round_trip() -> None:
    state = CardState()
    assert CardState.from_bytes(state.to_bytes()) == state
    assert state.to_bytes().startswith(b"[2,")


def test_round_trip_keeps_everything(make_txn: MakeTxn) -> None:
    txns = [make_txn(amount=1.1 * i, ts=T0 + i * S, lat=1.5, lon=-2.25) for i in range(1, 20)]
    # an id counted again more than 24 h later: the id log holds it twice
    txns.append(make_txn(txn_id="t-3", amount=0.1, ts=T0 + DAY + 10 * S, lat=1.5, lon=-2.25))
    state = state_of(txns)
    assert state.id_count == 20
    again = CardState.from_bytes(state.to_bytes())
    assert again == state
    assert again.to_bytes() == state.to_bytes()
    assert (again.count, again.mean, again.m2) == (state.count, state.mean, state.m2)
    assert again.last_location == (1.5, -2.25, T0 + DAY + 10 * S)
    assert again.is_duplicate("t-3", T0 + DAY + 10 * S, DAY)
    assert not again.is_duplicate("t-3", T0 + 2 * DAY + 10 * S, DAY)
    assert not again.is_duplicate("t-4", T0 + DAY + 4 * S, DAY)  # exactly 24 h apart


def test_round_trip_then_continue_equals_continue(make_txn: MakeTxn, config: FraudConfig) -> None:
    txns = [make_txn(amount=float(i % 7), ts=T0 + i * 7 * S) for i in range(1_000)]
    direct = state_of(txns)
    stepped = CardState()
    for txn in txns:
        stepped = CardState.from_bytes(stepped.to_bytes())
        stepped.add(txn, config)
    assert stepped == direct


def test_entries_trimmed_to_retention(make_txn: MakeTxn, config: FraudConfig) -> None:
    state = state_of([make_txn(ts=T0 + i * S) for i in range(3_000)])
    newest = T0 + 2_999 * S
    assert state.max_ts == newest
    # entries with ts > newest - 1200 s
    assert state.entry_count == 1_200
    assert state.count_in(newest - config.entry_retention_ms - 1, newest) == 1_200
    # an arrival too late to matter is counted in the statistics but not stored
    state.add(make_txn(ts=newest - config.entry_retention_ms), config)
    assert state.entry_count == 1_200 and state.count == 3_001


def test_ids_expire_after_duplicate_window_plus_disorder(
    make_txn: MakeTxn, config: FraudConfig
) -> None:
    state = state_of([make_txn(txn_id="a", ts=T0)])
    state.add(make_txn(ts=T0 + config.id_retention_ms - 1), config)
    assert state.id_count == 2
    state.add(make_txn(ts=T0 + config.id_retention_ms), config)
    assert state.id_count == 2 and not state.is_duplicate("a", T0, DAY)


def test_hard_cap(make_txn: MakeTxn) -> None:
    config = FraudConfig(max_ids_per_card=50)
    state = state_of([make_txn(ts=T0) for _ in range(200)], config)
    assert state.entry_count == 50 and state.id_count == 50
    assert state.count == 200


def test_out_of_order_entries_stay_sorted(make_txn: MakeTxn) -> None:
    state = state_of([make_txn(ts=T0 + t * S) for t in (5, 1, 9, 3, 3, 7)])
    assert state.count_in(T0, T0 + 3 * S) == 3
    assert state.count_in(T0 + 3 * S, T0 + 9 * S) == 3
    assert state.max_ts == T0 + 9 * S


def test_size_bounded_after_100k_transactions_through_the_detector(
    make_txn: MakeTxn, config: FraudConfig
) -> None:
    detector = FraudDetector(config)
    places = InMemoryPlaces(config)
    state: CardState | None = None
    sizes = {}
    for i in range(100_000):
        txn = make_txn(amount=float(i % 50), ts=T0 + i * MIN, lat=45.0, lon=5.0)
        det = detector.process(txn, state, places, txn.ts)
        assert det.alert is None
        state = det.state
        if i in (50_000, 99_999):
            sizes[i] = len(state.to_bytes())
    assert state is not None and state.count == 100_000
    assert state.entry_count == config.entry_retention_ms // MIN
    assert state.id_count == config.id_retention_ms // MIN  # one a minute for 24 h + 10 min
    assert sizes[99_999] <= sizes[50_000] * 1.01
    assert sizes[99_999] < 50_000


def test_size_capped_for_a_card_flooded_by_a_bot(make_txn: MakeTxn, config: FraudConfig) -> None:
    state = CardState()
    sizes = {}
    for i in range(100_000):  # one a second: the id window alone would hold 87 000
        state.add(make_txn(amount=1.0, ts=T0 + i * S), config)
        if i in (50_000, 99_999):
            sizes[i] = len(state.to_bytes())
    assert state.entry_count == config.entry_retention_ms // S
    assert state.id_count == config.max_ids_per_card
    assert sizes[99_999] <= sizes[50_000] * 1.01
    assert sizes[99_999] < 400_000


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"{}", b"[]", b"[2]", b"[3]", b"[true]", b"[1, null]", b'"x"'],
)
def test_bad_bytes_are_refused(raw: bytes) -> None:
    with pytest.raises(StateFormatError):
        CardState.from_bytes(raw)


def test_stddev_of_empty_and_single(make_txn: MakeTxn) -> None:
    assert CardState().stddev == 0.0
    assert state_of([make_txn(amount=7.0)]).stddev == 0.0
    assert state_of([make_txn(amount=1.0), make_txn(amount=3.0)]).stddev == pytest.approx(1.0)


def test_repr_is_short(make_txn: MakeTxn) -> None:
    assert "count=1" in repr(state_of([make_txn()]))


def test_trim_keeps_exactly_what_a_late_arrival_can_reach(make_txn: MakeTxn) -> None:
    config = FraudConfig(
        card_testing_window_ms=2_000, velocity_window_ms=1_000, max_disorder_ms=1_000
    )
    reach = config.card_testing_window_ms
    edge = T0 + 1
    older = make_txn(amount=1.0, ts=edge - 500)
    kept = state_of([older, make_txn(amount=1.0, ts=edge), make_txn(ts=edge + 2_999)], config)
    assert kept.entry_count == 2
    late = edge + 2_999 - config.max_disorder_ms  # the latest arrival still counted exactly
    assert kept.count_small_in(late - reach, late, 2.0) == 1
    trimmed = state_of([make_txn(amount=1.0, ts=edge), make_txn(ts=edge + 3_000)], config)
    assert trimmed.entry_count == 1
    late = edge + 3_000 - config.max_disorder_ms
    assert trimmed.count_small_in(late - reach, late, 2.0) == 0  # it could not have reached it


def test_ids_kept_exactly_while_a_late_duplicate_can_arrive(
    make_txn: MakeTxn, config: FraudConfig
) -> None:
    keep = config.id_retention_ms
    kept = state_of([make_txn(txn_id="a", ts=T0), make_txn(ts=T0 + keep - 1)])
    late = T0 + keep - 1 - config.max_disorder_ms
    assert kept.is_duplicate("a", late, config.duplicate_window_ms)
    dropped = state_of([make_txn(txn_id="a", ts=T0), make_txn(ts=T0 + keep)])
    assert dropped.id_count == 1


def test_duplicate_checks_every_remembered_sighting(make_txn: MakeTxn) -> None:
    # Beyond the disorder bound an id can be counted twice, far apart in event time; a third
    # arrival within 24 h of the first sighting (not the latest) is still a duplicate.
    config = FraudConfig(max_disorder_ms=3 * DAY)
    state = state_of([make_txn(txn_id="a", ts=T0 + 2 * DAY), make_txn(txn_id="a", ts=T0)], config)
    assert state.id_count == 2
    assert state.is_duplicate("a", T0 + 2 * DAY + HOUR, DAY)
    assert state.is_duplicate("a", T0 + HOUR, DAY)
    assert not state.is_duplicate("a", T0 + DAY, DAY)
    again = CardState.from_bytes(state.to_bytes())
    assert again.is_duplicate("a", T0 + 2 * DAY + HOUR, DAY)
