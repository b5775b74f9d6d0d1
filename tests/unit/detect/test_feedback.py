from __future__ import annotations

import pytest

from app.contract.events import Feedback
from app.detect.codec import StateFormatError
from app.detect.config import FraudConfig
from app.detect.feedback import (
    FeedbackRecord,
    InMemoryPlaces,
    PlaceDelta,
    PlaceState,
    feedback_deltas,
)
from tests.unit.detect.helpers import DAY, T0


def fb(label: str = "fraud", ts: int = T0, terminal: str | None = "p1") -> Feedback:
    return Feedback("x1", label, ts, terminal_id=terminal, merchant_id="m1")  # type: ignore[arg-type]


def test_first_fraud_label_adds() -> None:
    record, deltas = feedback_deltas(fb(), None)
    assert record == FeedbackRecord("fraud", T0, "t:p1")
    assert deltas == [PlaceDelta("t:p1", "x1", T0)]


def test_first_legit_label_changes_nothing() -> None:
    record, deltas = feedback_deltas(fb("legit"), None)
    assert record == FeedbackRecord("legit", T0, "t:p1")
    assert deltas == []


def test_flip_to_legit_removes() -> None:
    _, deltas = feedback_deltas(fb("legit", T0 + 1), FeedbackRecord("fraud", T0, "t:p1"))
    assert deltas == [PlaceDelta("t:p1", "x1", None)]


def test_flip_to_fraud_adds() -> None:
    _, deltas = feedback_deltas(fb("fraud", T0 + 1), FeedbackRecord("legit", T0, "t:p1"))
    assert deltas == [PlaceDelta("t:p1", "x1", T0 + 1)]


def test_move_to_another_place_removes_then_adds() -> None:
    _, deltas = feedback_deltas(fb(terminal="p2"), FeedbackRecord("fraud", T0, "t:p1"))
    assert deltas == [PlaceDelta("t:p1", "x1", None), PlaceDelta("t:p2", "x1", T0)]


def test_fallback_to_merchant_is_a_move() -> None:
    _, deltas = feedback_deltas(fb(terminal=None), FeedbackRecord("fraud", T0, "t:p1"))
    assert deltas == [PlaceDelta("t:p1", "x1", None), PlaceDelta("m:m1", "x1", T0)]


def test_new_ts_same_place_updates_in_place() -> None:
    record, deltas = feedback_deltas(fb(ts=T0 - 5), FeedbackRecord("fraud", T0, "t:p1"))
    assert record.ts == T0 - 5  # processed last wins, even with an older ts
    assert deltas == [PlaceDelta("t:p1", "x1", T0 - 5)]


def test_identical_redelivery_changes_nothing() -> None:
    _, deltas = feedback_deltas(fb(), FeedbackRecord("fraud", T0, "t:p1"))
    assert deltas == []


def test_no_place_removes_previous() -> None:
    new = Feedback("x1", "fraud", T0)
    record, deltas = feedback_deltas(new, FeedbackRecord("fraud", T0, "t:p1"))
    assert record.place is None
    assert deltas == [PlaceDelta("t:p1", "x1", None)]


def test_record_round_trip() -> None:
    for record in (FeedbackRecord("fraud", T0, "t:p1"), FeedbackRecord("legit", 1, None)):
        assert FeedbackRecord.from_bytes(record.to_bytes()) == record


def test_place_state_apply_and_round_trip(config: FraudConfig) -> None:
    state = PlaceState()
    state.apply(PlaceDelta("t:p1", "a", T0), config)
    state.apply(PlaceDelta("t:p1", "b", T0 - DAY), config)
    state.apply(PlaceDelta("t:p1", "b", T0 - 2 * DAY), config)
    assert sorted(state.fraud_times()) == [T0 - 2 * DAY, T0]
    state.apply(PlaceDelta("t:p1", "a", None), config)
    state.apply(PlaceDelta("t:p1", "zz", None), config)  # unknown: no-op
    assert list(state.fraud_times()) == [T0 - 2 * DAY]
    again = PlaceState.from_bytes(state.to_bytes())
    assert again == state and len(again) == 1


def test_place_state_prunes_beyond_twice_the_window(config: FraudConfig) -> None:
    keep = 2 * config.terminal_window_ms
    state = PlaceState()
    state.apply(PlaceDelta("p", "old", T0 - keep), config)
    state.apply(PlaceDelta("p", "older", T0 - keep - 1), config)
    state.apply(PlaceDelta("p", "new", T0), config)
    assert sorted(state.fraud_times()) == [T0 - keep, T0]
    state.apply(PlaceDelta("p", "late", T0 - keep - 1), config)  # too old on arrival
    assert len(state) == 2
    state.apply(PlaceDelta("p", "newer", T0 + 1), config)
    assert sorted(state.fraud_times()) == [T0, T0 + 1]


def test_place_state_bounded(config: FraudConfig) -> None:
    state = PlaceState()
    for i in range(2_000):
        state.apply(PlaceDelta("p", f"x{i}", T0 + i * DAY), config)
    assert len(state) == 57  # labels within 56 days of the newest, one a day


def test_in_memory_places_forgets_empty_places(config: FraudConfig) -> None:
    places = InMemoryPlaces(config)
    places.apply(PlaceDelta("p", "x", None))
    assert len(places) == 0 and places.fraud_label_times("p") == ()
    places.apply(PlaceDelta("p", "x", T0))
    assert list(places.fraud_label_times("p")) == [T0]
    assert places.get("p") is not None
    places.apply(PlaceDelta("p", "x", None))
    assert len(places) == 0 and places.get("p") is None


@pytest.mark.parametrize(
    "raw", [b"", b"{}", b"[]", b"[2, 1, 2]", b"[1, [], []", b'[1, ["a"], []]', b"[1, []]"]
)
def test_bad_place_bytes_are_refused(raw: bytes) -> None:
    with pytest.raises((StateFormatError, ValueError)):
        PlaceState.from_bytes(raw)


def test_unknown_record_version_is_refused() -> None:
    with pytest.raises(StateFormatError, match="version 9"):
        FeedbackRecord.from_bytes(b'[9, "fraud", 1, null]')


def test_relabel_too_old_to_keep_removes_the_old_entry(config: FraudConfig) -> None:
    keep = 2 * config.terminal_window_ms
    state = PlaceState()
    state.apply(PlaceDelta("p", "a", T0), config)
    state.apply(PlaceDelta("p", "b", T0), config)
    state.apply(PlaceDelta("p", "b", T0 - keep - 1), config)  # its last label is now too old
    assert list(state.fraud_times()) == [T0]
