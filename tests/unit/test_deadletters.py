from __future__ import annotations

import base64

from app.contract.deadletters import dead_letter, key_error


def test_text_payload_kept_as_text():
    dl = dead_letter(
        source_topic="transactions",
        partition=2,
        offset=7,
        key=b"tok",
        error="amount: bad",
        payload=b'{"amount":"abc"}',
        ts_ms=0,
    )
    assert dl == {
        "source_topic": "transactions",
        "partition": 2,
        "offset": 7,
        "key": "tok",
        "error": "amount: bad",
        "payload": '{"amount":"abc"}',
        "payload_encoding": "utf-8",
        "ts": "1970-01-01T00:00:00.000Z",
    }


def test_binary_payload_base64():
    dl = dead_letter(
        source_topic="t", partition=0, offset=0, key=None, error="x", payload=b"\xff\x00", ts_ms=0
    )
    assert dl["payload_encoding"] == "base64"
    assert base64.b64decode(dl["payload"]) == b"\xff\x00"


def test_key_must_be_the_id():
    assert key_error("card_id", b"tok", "tok") is None
    assert (
        key_error("card_id", b"other", "tok")
        == "key: must be the record's card_id ('tok'), got 'other'"
    )
    assert "got no key" in key_error("card_id", None, "tok")
