"""The training topic's records (`app.score.follower`): what a worker writes is what every
worker's learner reads back, exactly."""

from __future__ import annotations

import math
from array import array

import orjson
import pytest

from app.contract.events import Feedback
from app.score.config import ScoreConfig
from app.score.follower import apply_record, example_value, label_record
from app.score.learner import DelayedLearner, Example


def _learner() -> DelayedLearner:
    return DelayedLearner(ScoreConfig())


@pytest.mark.parametrize("place", ["t:T1", None])
def test_example_round_trips_bit_for_bit(place):
    x = array("d", [0.1, -2.5, math.pi, 1e-300, -0.0, 12345.678901234567])
    ex = Example("tx-ü1", "card-1", place, 1_795_341_600_250, x)
    learner = _learner()
    assert apply_record(learner, example_value(ex)) is None
    got = learner.examples["tx-ü1"]
    assert (got.card_id, got.place, got.ts) == ("card-1", place, 1_795_341_600_250)
    assert got.x is not None and got.x.tobytes() == x.tobytes()
    assert learner.offset == 1


def test_example_without_features_round_trips():
    learner = _learner()
    apply_record(learner, example_value(Example("t", "c", None, 5, None)))
    assert learner.examples["t"].x is None


def test_binary_is_smaller_than_the_json_form():
    x = array("d", [i / 7 for i in range(45)])
    ex = Example("txn-000123", "card-0042", "t:T-0007", 1_795_341_600_250, x)
    legacy = orjson.dumps(
        {
            "kind": "example",
            "txn_id": ex.txn_id,
            "card_id": ex.card_id,
            "place": ex.place,
            "ts": ex.ts,
            "x": x.tolist(),
        }
    )
    assert len(example_value(ex)) < len(legacy) / 2


def test_json_examples_of_earlier_versions_are_still_read():
    legacy = orjson.dumps(
        {"kind": "example", "txn_id": "t", "card_id": "c", "place": None, "ts": 7, "x": [1.5]}
    )
    learner = _learner()
    apply_record(learner, legacy)
    assert learner.examples["t"].x == array("d", [1.5])


def test_labels_are_read_back():
    learner = _learner()
    apply_record(learner, example_value(Example("t", "c", "t:T1", 7, array("d", [1.0]))))
    kind = apply_record(learner, label_record(Feedback("t", "fraud", 8, "c", None, "T1")))
    assert kind == "fraud"


@pytest.mark.parametrize(
    "raw", [b"X", b"X\x05\x00\x00\x00[1]", b"X\x02\x00\x00\x00[]", b"X\x02\x00\x00\x00[]abc"]
)
def test_unreadable_records_are_skipped_and_logged(raw, caplog):
    learner = _learner()
    assert apply_record(learner, raw) is None
    assert learner.offset == 1 and not learner.examples
    assert "unreadable training record" in caplog.text


def test_long_ids_round_trip():
    """Ids are as long as a record allows (the hostile-input fuzz test sent a 70 000-char one)."""
    long_id = "t" * 70_000
    learner = _learner()
    apply_record(learner, example_value(Example(long_id, "c" * 80_000, None, 5, array("d", [2.0]))))
    assert learner.examples[long_id].card_id == "c" * 80_000
    assert learner.examples[long_id].x == array("d", [2.0])
