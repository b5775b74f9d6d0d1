"""Fuzzing the intake: whatever bytes arrive, a record is processed or dead-lettered with a
readable reason, never an exception (not even one the per-record guard would catch).

Every record goes through `Replayer.feed`: the intake and detectors `vigil replay` uses, which
are the live agents' too. Deterministic (`derandomize`), 10 000 examples in all.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.contract.intake import UNKNOWN_KEY
from app.contract.pan import looks_like_pan
from app.replay import Record, Replayer, read_records
from app.settings import Settings

SETTINGS = Settings()
TS = "2026-11-22T10:00:00.250Z"
PAN = "4111111111111111"
TOPICS = {
    "transactions": "card_id",
    "fraud-feedback": "txn_id",
    "cart-events": "user_id",
}
BASE: dict[str, dict[str, Any]] = {
    "transactions": {
        "txn_id": "t-1",
        "card_id": "tok_1",
        "amount": "42.50",
        "currency": "EUR",
        "merchant_id": "m-1",
        "terminal_id": "pos-1",
        "country": "FR",
        "lat": 48.857,
        "lon": 2.352,
        "ts": TS,
    },
    "fraud-feedback": {"txn_id": "t-1", "label": "fraud", "terminal_id": "pos-1", "ts": TS},
    "cart-events": {
        "event_id": "e-1",
        "user_id": "u-1",
        "type": "add_to_cart",
        "product_id": "p-1",
        "quantity": 2,
        "price": 19.99,
        "currency": "EUR",
        "ts": TS,
    },
}
FIELDS = sorted({f for base in BASE.values() for f in base} | {"session_id", "mcc", "channel"})

# Raw JSON texts for a field's value: everything a producer could get wrong.
ODD_TS = [
    '"2026-11-22T10:00:00Z\\n"',
    '"2026-11-22T10:00:00.123456789012Z"',
    '"2026-11-22T10:00:00+25:00"',
    '"2026-02-30T10:00:00Z"',
    '"2026-11-22T23:59:60Z"',
    '"1969-12-31T23:59:59Z"',
    '"2200-01-01T00:00:00.001Z"',
    '"0000-01-01T00:00:00Z"',
    '"2026-11-22"',
    "-1",
    "7258118400001",
    "1795341600250.5",
    "1e15",
    '"1795341600250"',
]
LITERALS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "9" * 400,
    "-0",
    "0",
    "1000001",
    str(2**63),
    "true",
    "null",
    "[]",
    "{}",
    '""',
    '" "',
    '"\\ud800"',
    '"a\\udfff"',
    '"\\u0000"',
    '"EUR\\n"',
    '"eur"',
    f'"{PAN}"',
    '"4111 1111 1111 1111"',
    '"\\u0034111111111111111"',
]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.one_of(
    json_leaf,
    st.lists(json_leaf, max_size=3),
    st.dictionaries(st.text(max_size=6), json_leaf, max_size=3),
)


def _text(value: Any) -> str:
    return json.dumps(value)  # ensure_ascii: lone surrogates become \\ud800 escapes


@st.composite
def raw_json_value(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.sampled_from(LITERALS))
    if kind == 1:
        return draw(st.sampled_from(ODD_TS))
    if kind == 2:
        depth = draw(st.sampled_from([1, 63, 64, 65, 1025, 5000]))
        return "[" * depth + "]" * depth
    if kind == 3:
        size = draw(st.sampled_from([61, 1000, 100_000]))
        return _text(draw(st.sampled_from('x9 \\"')) * size)
    return _text(draw(json_values))


@st.composite
def hostile_record(draw: st.DrawFn) -> Record:
    topic = draw(st.sampled_from(sorted(TOPICS)))
    base = dict(BASE[topic])
    for field, value in draw(
        st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3)
    ).items():
        base[field] = value
    members = [f"{_text(k)}:{_text(v)}" for k, v in base.items()]
    # Replace or add fields with raw hostile JSON texts; duplicated keys come in this way too.
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from([*FIELDS, "extra", "amount", "ts", "card_id", "quantity"]))
        members.insert(draw(st.integers(0, len(members))), f'"{field}":{draw(raw_json_value())}')
    raw = ("{" + ",".join(members) + "}").encode()
    shape = draw(st.integers(0, 9))
    if shape == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]  # truncated
    elif shape == 1:
        raw = draw(st.binary(max_size=200))  # random bytes
    elif shape == 2:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]  # corrupted
    try:
        obj = orjson.loads(raw)
        own_key = obj.get(TOPICS[topic]) if isinstance(obj, dict) else None
    except orjson.JSONDecodeError:
        own_key = None
    key = draw(
        st.one_of(
            st.just(own_key if isinstance(own_key, str) else "k"),
            st.just(UNKNOWN_KEY),
            st.none(),
            st.binary(max_size=20),
            st.text(max_size=20),
            st.just(PAN),
            st.just("x" * 100_000),
        )
    )
    value = None if draw(st.integers(0, 30)) == 0 else raw
    return Record(topic, key, value, 0, draw(st.integers(0, 10**6)))


_CARD_ID = re.compile(r'"card_id"\s*:\s*"([0-9 -]{13,37})"')


def _check(outputs: list[Any]) -> None:
    for out in outputs:
        out.line()  # every output can be written
        if out.kind == "dead_letters":
            # No raw card number where a card_id or a key belongs, not even in what did not decode.
            key, payload = out.value["key"], out.value["payload"] or ""
            assert key is None or not looks_like_pan(key), key
            assert not any(looks_like_pan(p) for p in _CARD_ID.findall(payload)), payload[:300]
            error = out.value["error"]
            assert isinstance(error, str) and error.strip(), out.value
            assert len(error) <= 300, error[:400]
            assert not error.startswith("internal error"), error


def _valid(topic: str, n: int) -> Record:
    value = dict(BASE[topic])
    for field in ("txn_id", "event_id"):
        if field in value:
            value[field] = f"{value[field]}-{n}"
    return Record(topic, value[TOPICS[topic]], orjson.dumps(value), 0, n)


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@fuzz(900)
@given(st.lists(hostile_record(), min_size=1, max_size=3), st.integers(0, 2))
def test_hostile_records_are_processed_or_dead_lettered(records, valid_first):
    replayer = Replayer(SETTINGS)
    for n in range(valid_first):  # some state for the hostile records to meet
        for topic in sorted(TOPICS):
            _check(replayer.feed(_valid(topic, n)))
    for record in records:
        _check(replayer.feed(record))
    _check(replayer.finish())


@fuzz(6000)
@given(st.sampled_from(sorted(TOPICS)), st.sampled_from(FIELDS), raw_json_value())
def test_every_field_rule_with_every_hostile_value(topic, field, raw_value):
    base = dict(BASE[topic])
    base.pop(field, None)
    members = [f"{_text(k)}:{_text(v)}" for k, v in base.items()] + [f'"{field}":{raw_value}']
    raw = ("{" + ",".join(members) + "}").encode()
    replayer = Replayer(SETTINGS)
    _check(replayer.feed(_valid(topic, 0)))
    key = base.get(TOPICS[topic], "k")
    _check(replayer.feed(Record(topic, key if isinstance(key, str) else "k", raw, 0, 1)))
    _check(replayer.finish())


@fuzz(600)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120),
            hostile_record().map(
                lambda r: (
                    orjson.dumps(
                        {"topic": r.topic, "key": r.key if isinstance(r.key, str) else None}
                    )[:-1]
                    + b',"value":'
                    + (r.value or b"null")
                    + b"}"
                )
            ),
        ),
        max_size=4,
    )
)
def test_replay_lines_of_any_shape(lines):
    replayer = Replayer(SETTINGS)
    for record in read_records(lines, topic=None):
        _check(replayer.feed(record))
    for record in read_records(lines, topic="transactions"):
        _check(replayer.feed(record))
    _check(replayer.finish())


@fuzz(2500)
@given(st.text(max_size=40), st.sampled_from(sorted(TOPICS)))
def test_any_text_as_an_id(text, topic):
    base = dict(BASE[topic])
    base[TOPICS[topic]] = text
    raw = json.dumps(base).encode()
    replayer = Replayer(SETTINGS)
    _check(replayer.feed(Record(topic, text, raw, 0, 0)))
    _check(replayer.finish())
