"""A running worker puts every bad record on dead letters, with its reason and bytes, and stays up."""

from __future__ import annotations

import base64

import orjson
import pytest

pytestmark = pytest.mark.integration

TS = "2026-11-22T10:00:00.250Z"
GOOD_TXN = {
    "txn_id": "t-1",
    "card_id": "c-1",
    "amount": "42.50",
    "currency": "EUR",
    "merchant_id": "m-1",
    "ts": TS,
}
GOOD_CART = {"event_id": "e-1", "user_id": "u-1", "type": "view", "ts": TS}
GOOD_FB = {"txn_id": "t-1", "label": "fraud", "terminal_id": "pos-1", "ts": TS}


def txn(**kw):
    return orjson.dumps({**GOOD_TXN, **kw})


# (topic kind, key, raw value, a fragment the error must contain)
BAD = [
    ("transactions", "c-1", b"this is not json", "not valid UTF-8 JSON"),
    ("transactions", "c-1", b"\xff\xfe\x00binary", "not valid UTF-8 JSON"),
    ("transactions", "c-1", b"[1, 2, 3]", "must be a JSON object"),
    ("transactions", "c-1", txn(amount="abc"), 'amount: must be a finite number >= 0, got "abc"'),
    (
        "transactions",
        "c-1",
        b'{"txn_id":"t","card_id":"c-1","amount":NaN,"currency":"EUR","merchant_id":"m","ts":1}',
        "not valid UTF-8 JSON",
    ),
    ("transactions", "c-1", txn(amount="NaN"), "amount: must be a finite number >= 0"),
    ("transactions", "c-1", txn(amount=-5), "amount: must be a finite number >= 0, got -5"),
    ("transactions", "c-1", txn(amount=[1]), "amount: must be a finite number"),
    ("transactions", "c-1", txn(txn_id=None), "txn_id: required"),
    ("transactions", "c-1", txn(card_id=123), "card_id: must be a string"),
    ("transactions", "c-1", txn(ts="yesterday"), "ts: must be RFC 3339"),
    ("transactions", "c-1", txn(ts="2026-11-22T10:00:00"), "ts: must be RFC 3339 with an offset"),
    ("transactions", "c-1", txn(currency="euro"), "currency: must be an ISO 4217 code"),
    ("transactions", "c-2", txn(), "key: must be the record's card_id"),
    (
        "feedback",
        "t-1",
        orjson.dumps({**GOOD_FB, "label": "maybe"}),
        'label: must be "fraud" or "legit"',
    ),
    ("feedback", "t-1", orjson.dumps({**GOOD_FB, "ts": None}), "ts: required"),
    ("cart_events", "u-1", orjson.dumps({**GOOD_CART, "type": "wishlist"}), "type: must be one of"),
    (
        "cart_events",
        "u-1",
        orjson.dumps({**GOOD_CART, "type": "add_to_cart"}),
        "product_id: required",
    ),
    (
        "cart_events",
        "u-1",
        orjson.dumps({**GOOD_CART, "quantity": 0}),
        "quantity: must be an integer >= 1",
    ),
]


def test_every_bad_record_is_dead_lettered_and_the_worker_stays_up(deployment):
    worker = deployment.worker().start().wait_ready()
    deployment.produce([(kind, key, raw) for kind, key, raw, _ in BAD])
    # After the bad records, valid ones still flow: a large amount alerts, a cart event is fine.
    deployment.produce(
        [
            (
                "transactions",
                "c-9",
                {**GOOD_TXN, "txn_id": "t-big", "card_id": "c-9", "amount": 25000},
            ),
            ("cart_events", "u-1", GOOD_CART),
        ]
    )
    dead = deployment.consume("dead_letters", min_count=len(BAD), timeout=60)
    alerts = deployment.consume("fraud_alerts", min_count=1, timeout=30, settle=0)

    assert len(dead) == len(BAD), [v["error"] for _, v in dead]
    by_payload = {}
    for key, value in dead:
        raw = (
            base64.b64decode(value["payload"])
            if value["payload_encoding"] == "base64"
            else value["payload"].encode()
        )
        by_payload[(value["source_topic"], raw)] = (key, value)
    for kind, key, raw, fragment in BAD:
        found = by_payload.get((deployment.topics[kind], raw))
        assert found is not None, f"{raw!r} not dead-lettered with its original bytes"
        dl_key, value = found
        assert fragment in value["error"], (fragment, value["error"])
        assert dl_key == key and value["key"] == key
        assert isinstance(value["partition"], int) and isinstance(value["offset"], int)
        assert value["ts"].endswith("Z")
    assert [v["txn_id"] for _, v in alerts] == ["t-big"]
    assert worker.alive()
    status, _ = worker.http("/readyz")
    assert status == 200
    metrics = worker.metrics()
    assert (
        f'vigil_events_in_total{{outcome="dead_letter",topic="{deployment.topics["transactions"]}"}} 14.0'
        in metrics
    )
