"""A live worker fed hostile records interleaved with valid ones: every bad record lands in
dead letters with replay's reason, every valid one gives exactly replay's outputs, no raw card
number is stored, and the worker is alive at the end."""

from __future__ import annotations

import asyncio
import base64
import random
from collections import Counter
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from app.contract.pan import looks_like_pan
from tests.replay_compare import replay_records
from tests.scenarios import without_detected
from tests.unit.test_fuzz_intake import LITERALS, ODD_TS, PAN

pytestmark = pytest.mark.integration

T0 = 1_795_341_600_000  # 2026-11-22T10:00:00Z
INPUT = {"transactions": "card_id", "feedback": "txn_id", "cart_events": "user_id"}
BASE: dict[str, dict[str, Any]] = {
    "transactions": {
        "txn_id": "h-t",
        "card_id": "h-card",
        "amount": "42.50",
        "currency": "EUR",
        "merchant_id": "h-m",
        "terminal_id": "h-pos",
        "ts": T0,
    },
    "feedback": {"txn_id": "h-t", "label": "legit", "terminal_id": "h-pos", "ts": T0},
    "cart_events": {
        "event_id": "h-e",
        "user_id": "h-user",
        "type": "add_to_cart",
        "product_id": "h-p",
        "price": 1.5,
        "currency": "EUR",
        "ts": T0,
    },
}
HOSTILE_VALUES = [
    *LITERALS,
    *ODD_TS,
    "[" * 65 + "]" * 65,
    "[" * 5000 + "]" * 5000,
    orjson.dumps("x" * 100_000).decode(),
]


def _join(members: list[tuple[str, str]]) -> bytes:
    return ("{" + ",".join(f"{orjson.dumps(k).decode()}:{v}" for k, v in members) + "}").encode()


def _members(topic: str) -> list[tuple[str, str]]:
    return [(k, orjson.dumps(v).decode()) for k, v in BASE[topic].items()]


def hostile(rng: random.Random, n: int) -> tuple[str, str | None, bytes | None]:
    """One hostile record: (topic kind, key, raw value)."""
    topic = rng.choice(sorted(INPUT))
    members = _members(topic)
    own_key: str | None = BASE[topic][INPUT[topic]]
    shape = rng.randrange(9)
    if shape == 0:  # a field rule broken (or an unknown field holding anything)
        field = rng.choice([k for k, _ in members] + ["extra", "quantity", "country", "lat"])
        members = [m for m in members if m[0] != field] + [(field, rng.choice(HOSTILE_VALUES))]
        if field == INPUT[topic]:
            own_key = "k"
        raw = _join(members)
    elif shape == 1:
        raw = rng.randbytes(rng.randrange(1, 80))
    elif shape == 2:
        full = _join(members)
        raw = full[: rng.randrange(0, len(full))]
    elif shape == 3:  # duplicated key: the last one counts
        raw = _join([*members, ("currency", '"usd"')])
    elif shape == 4:
        raw = _join(members)
        own_key = rng.choice([None, "wrong", "x" * 1000])
    elif shape == 5:
        raw = None
    elif shape == 6 and topic == "transactions":  # a raw card number
        raw = _join([m for m in members if m[0] != "card_id"] + [("card_id", f'"{PAN}"')])
        own_key = PAN
    else:
        raw = _join([*members, ("ts", rng.choice(ODD_TS))])
    return topic, own_key, raw


def valid(rng: random.Random, n: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Valid events of their own cards and users, with alerts and cart outcomes to compare."""
    card, user = f"vc-{n % 5}", f"vu-{n % 4}"
    out: list[tuple[str, str, dict[str, Any]]] = [
        (
            "transactions",
            card,
            {
                "txn_id": f"vt-{n}",
                "card_id": card,
                "amount": 25000 if n % 17 == 0 else round(rng.uniform(1, 80), 2),
                "currency": "EUR",
                "merchant_id": f"vm-{n % 3}",
                "terminal_id": f"vpos-{n % 3}",
                "ts": T0 + n * 5_000,
            },
        )
    ]
    step = n // 4
    kind = ["add_to_cart", "view", "purchase"][step % 3]
    event = {"event_id": f"ve-{n}", "user_id": user, "type": kind, "ts": T0 + step * 31 * 60_000}
    if kind == "add_to_cart":
        event.update(product_id="vp", price=2.5, currency="EUR", quantity=2)
    out.append(("cart_events", user, event))
    return out


async def _produce(bootstrap: str, records: list[tuple[str, str | None, Any]]) -> None:
    """Like `Deployment.produce`, but None is sent as a null value (a tombstone), not `null`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = []
        for topic, key, value in records:
            raw = value if isinstance(value, bytes | None) else orjson.dumps(value)
            raw_key = key.encode() if isinstance(key, str) else key
            futures.append(await producer.send(topic, key=raw_key, value=raw))
        for f in futures:
            await f
    finally:
        await producer.stop()


def _payload(value: dict[str, Any]) -> bytes | None:
    if value["payload"] is None:
        return None
    if value["payload_encoding"] == "base64":
        return base64.b64decode(value["payload"])
    return value["payload"].encode()


def test_hostile_records_dead_lettered_valid_ones_as_replay_says(deployment, tmp_path):
    rng = random.Random(20261122)
    records: list[tuple[str, str | None, Any]] = []
    n_valid = 0
    for i in range(300):
        records.append(hostile(rng, i))
        if i % 2 == 0:
            records.extend(valid(rng, n_valid))
            n_valid += 1
    # Two valid adds that together take a cart line past 1,000,000: the second is dead-lettered.
    for i in range(2):
        add = {**BASE["cart_events"], "event_id": f"vq-{i}", "user_id": "vq", "quantity": 600_000}
        records.append(("cart_events", "vq", add))
    # Every valid cart ends with a purchase: nothing left for the wall clock (live only) to fire.
    last_step = (n_valid - 1) // 4
    for u in range(4):
        ts = T0 + (last_step + 2) * 31 * 60_000
        event = {"event_id": f"ve-end-{u}", "user_id": f"vu-{u}", "type": "purchase", "ts": ts}
        records.append(("cart_events", f"vu-{u}", event))
    # Records whose bytes an envelope line can carry (UTF-8) are replayed; the others are
    # dead-lettered as not UTF-8, as a unit test says.
    replayable, binary = [], []
    for topic, key, raw in records:
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                binary.append((topic, key, raw))
                continue
        replayable.append((topic, key, raw))
    expected = replay_records(deployment, replayable, tmp_path)

    worker = deployment.worker().start().wait_ready()
    topics = deployment.topics
    asyncio.run(_produce(deployment.bootstrap, [(topics[t], k, v) for t, k, v in records]))
    n_dead = len(expected["dead_letters"]) + len(binary)
    dead = deployment.consume("dead_letters", min_count=n_dead, timeout=90)

    # Every bad record is in dead letters with replay's reason, key and bytes; nothing else is.
    def row(key: Any, value: dict[str, Any]) -> tuple[Any, ...]:
        return (value["source_topic"], key, value["error"], _payload(value))

    live_rows = Counter(row(k, v) for k, v in dead)
    replay_rows = Counter(row(k, v) for k, v in expected["dead_letters"])
    binary_rows = live_rows - replay_rows
    assert replay_rows - live_rows == Counter(), "dead letters replay has and the worker lacks"
    assert sum(binary_rows.values()) == len(binary)
    assert all("not valid UTF-8 JSON" in error for _, _, error, _ in binary_rows)
    assert len(dead) == n_dead

    assert any(v["error"].startswith("quantity: adding 600000 to the 600000") for _, v in dead)

    # No raw card number is stored anywhere in a dead letter.
    pan_letters = [v for _, v in dead if "raw card number" in v["error"]]
    assert pan_letters, "the run had records with raw card numbers"
    for key, value in dead:
        assert PAN not in orjson.dumps(value).decode() and (key is None or PAN not in key)
        assert value["key"] is None or not looks_like_pan(value["key"])

    # Every valid record was processed as replay says.
    alerts = deployment.consume("fraud_alerts", min_count=1, timeout=30)
    abandoned = deployment.consume("cart_abandoned", min_count=1, timeout=30)
    recovered = deployment.consume("cart_recovered", min_count=1, timeout=30)

    def ours(outputs: list[tuple[Any, dict[str, Any]]], prefix: str) -> list[Any]:
        kept = [without_detected(v) for k, v in outputs if str(k).startswith(prefix)]
        return sorted(kept, key=orjson.dumps)

    assert ours(alerts, "vc-") and ours(abandoned, "vu-") and ours(recovered, "vu-")
    assert ours(alerts, "vc-") == ours(expected["fraud_alerts"], "vc-")
    assert ours(abandoned, "vu-") == ours(expected["cart_abandoned"], "vu-")
    assert ours(recovered, "vu-") == ours(expected["cart_recovered"], "vu-")

    assert worker.alive(), worker.tail()
    status, _ = worker.http("/readyz")
    assert status == 200
    metrics = worker.metrics()
    topic = deployment.topics["transactions"]
    assert f'vigil_dead_letters_total{{reason="pan",source_topic="{topic}"}} ' in metrics
    assert PAN not in metrics
    assert PAN not in worker.log_path.read_text()  # never logged
