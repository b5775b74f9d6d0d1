"""The traffic generator: deterministic, valid per the contract, and it exercises every detector.

The generator is what the demo and the benchmark feed to Vigil, so "it produces realistic
traffic" is checked the only way that matters: the real decoder accepts it, and the real
detectors (through `vigil replay`'s `Replayer`) find each injected pattern in it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.contract.decode import decode_cart_event, decode_feedback, decode_transaction
from app.detect.config import RULES
from app.devtools.generate import (
    DEFAULT_START_MS,
    GeneratedRecord,
    PatternRates,
    TrafficGenerator,
    to_bytes,
    topic_for,
    write_jsonl,
)
from app.exceptions import DecodeError
from app.replay import Output, Record, Replayer, run_replay
from app.settings import Settings

DECODERS: dict[str, tuple[Callable[[bytes | str], Any], str]] = {
    "transactions": (decode_transaction, "card_id"),
    "feedback": (decode_feedback, "txn_id"),
    "cart_events": (decode_cart_event, "user_id"),
}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def default_run(settings: Settings) -> tuple[list[GeneratedRecord], list[Output], Replayer]:
    """20 000 records with the default probabilities, through the offline detectors."""
    records = TrafficGenerator(seed=7).records(20_000)
    replayer = Replayer(settings)
    outputs: list[Output] = []
    for offset, (kind, key, value) in enumerate(records):
        record = Record(topic_for(kind, settings), key, to_bytes(value), 0, offset)
        outputs.extend(replayer.feed(record))
    outputs.extend(replayer.finish())
    return records, outputs, replayer


def test_same_seed_same_records_other_seed_other_records() -> None:
    first = TrafficGenerator(seed=11, bad_rate=0.01).records(3000)
    again = TrafficGenerator(seed=11, bad_rate=0.01).records(3000)
    assert [to_bytes(r.value) for r in first] == [to_bytes(r.value) for r in again]
    assert first == again
    other = TrafficGenerator(seed=12, bad_rate=0.01).records(3000)
    assert first != other


def test_records_and_stream_continue_one_another() -> None:
    gen = TrafficGenerator(seed=3)
    head = gen.records(100)
    tail = [next(gen.stream()) for _ in range(100)]
    assert head + tail == TrafficGenerator(seed=3).records(200)


def test_every_value_decodes_except_the_deliberately_bad_ones() -> None:
    records = TrafficGenerator(seed=5, bad_rate=0.02).records(8000)
    kinds = Counter(r.kind for r in records)
    assert set(kinds) == set(DECODERS)
    bad = 0
    for kind, key, value in records:
        decode, key_field = DECODERS[kind]
        if isinstance(value, bytes):
            bad += 1
            with pytest.raises(DecodeError):
                decode(value)
            continue
        event = decode(to_bytes(value))
        assert getattr(event, key_field) == key  # keyed as the contract says
    assert 80 <= bad <= 250  # about 2 % of 8000


def test_values_use_the_contracts_formats(default_run: Any) -> None:
    records, _, _ = default_run
    txns = [r.value for r in records if r.kind == "transactions"]
    # Both timestamp encodings and both amount encodings appear, as from real producers.
    assert any(isinstance(v["ts"], int) for v in txns)
    assert any(isinstance(v["ts"], str) and v["ts"].endswith("Z") for v in txns)
    assert any(isinstance(v["ts"], str) and v["ts"][-6] in "+-" for v in txns)
    assert any(isinstance(v["amount"], str) for v in txns)
    assert any(isinstance(v["amount"], float) for v in txns)
    # Card-present sales carry a terminal and a location; online ones a device instead.
    assert any("terminal_id" in v and "lat" in v for v in txns)
    assert any("device_id" in v and "lat" not in v for v in txns)
    carts = Counter(r.value["type"] for r in records if r.kind == "cart_events")
    assert set(carts) == {"view", "add_to_cart", "remove_from_cart", "begin_checkout", "purchase"}
    labels = Counter(r.value["label"] for r in records if r.kind == "feedback")
    assert labels["fraud"] >= 2 and labels["legit"] > labels["fraud"]


def test_mix_and_event_time_rate(default_run: Any) -> None:
    records, _, _ = default_run
    kinds = Counter(r.kind for r in records)
    assert 0.55 < kinds["transactions"] / len(records) < 0.8
    assert 0.25 < kinds["cart_events"] / len(records) < 0.4
    assert 0 < kinds["feedback"] / len(records) < 0.03
    times = [decode_ts(r) for r in records]
    assert times[0] >= DEFAULT_START_MS
    span_s = (times[-1] - times[0]) / 1000
    assert 20_000 / 5.0 * 0.95 < span_s < 20_000 / 5.0 * 1.05  # 5 records per second


def decode_ts(record: GeneratedRecord) -> int:
    decode, _ = DECODERS[record.kind]
    return int(decode(to_bytes(record.value)).ts)


def test_replay_finds_every_rule_and_both_cart_outcomes(default_run: Any) -> None:
    _, outputs, replayer = default_run
    by_kind = Counter(o.kind for o in outputs)
    fired = Counter(
        rule["rule"] for o in outputs if o.kind == "fraud_alerts" for rule in o.value["rules"]
    )
    for rule in RULES:
        assert fired[rule] >= 1, f"no {rule} alert in 20 000 records: {dict(fired)}"
    assert by_kind["cart_abandoned"] >= 1
    assert by_kind["cart_recovered"] >= 1
    assert by_kind["dead_letters"] == 0  # bad_rate defaults to 0
    assert replayer.counts["duplicates"] >= 1  # producer retries are in the mix
    # Alerts stay the exception, as in real traffic.
    txns = sum(1 for o in outputs if o.kind == "fraud_alerts")
    assert txns < 0.03 * 20_000


def test_no_patterns_means_few_alerts(settings: Settings) -> None:
    quiet = PatternRates(0, 0, 0, 0, 0, 0)
    records = TrafficGenerator(seed=9, patterns=quiet, duplicate_rate=0).records(5000)
    replayer = Replayer(settings)
    fired: Counter[str] = Counter()
    for offset, (kind, key, value) in enumerate(records):
        for out in replayer.feed(
            Record(topic_for(kind, settings), key, to_bytes(value), 0, offset)
        ):
            fired.update(r["rule"] for r in out.value.get("rules", []))
    # Normal spending may trip the statistical rule now and then, never the scripted ones.
    assert fired["large_amount"] == fired["card_testing"] == fired["compromised_terminal"] == 0
    assert fired["impossible_travel"] == 0
    assert sum(fired.values()) < 0.01 * 5000


def test_write_jsonl_is_readable_by_replay(tmp_path: Path, settings: Settings) -> None:
    gen = TrafficGenerator(seed=4, bad_rate=0.01)
    records = gen.records(3000)
    path = tmp_path / "traffic.jsonl"
    assert write_jsonl(path, records, settings) == 3000
    first = orjson.loads(path.read_bytes().splitlines()[0])
    assert set(first) == {"topic", "key", "value"}
    assert first["topic"] in (
        settings.topic_transactions,
        settings.topic_feedback,
        settings.topic_cart_events,
    )

    summary = run_replay([str(path)], tmp_path / "out", settings)
    bad = sum(1 for r in records if isinstance(r.value, bytes))
    assert bad > 0
    assert summary["records"] == 3000
    assert summary["dead-letters.jsonl"] == bad


def test_realtime_mode_stamps_the_clock() -> None:
    seen: list[int] = []

    def clock() -> int:
        seen.append(1_800_000_000_000 + 7 * len(seen))
        return seen[-1]

    gen = TrafficGenerator(seed=1, realtime=True, clock=clock, duplicate_rate=0)
    times = [decode_ts(r) for r in gen.records(500)]
    # Each record carries the wall clock of its making (to the second where a producer's
    # format has no milliseconds).
    assert seen[0] - 1000 < min(times) and max(times) <= seen[-1]
    assert all(later > earlier - 1000 for earlier, later in pairwise(times))
    assert sum(t in set(seen) for t in times) > len(times) / 2


def test_scaled_rates_and_validation() -> None:
    rates = PatternRates().scaled(10)
    assert rates.velocity == pytest.approx(0.01)
    assert rates.total == pytest.approx(PatternRates().total * 10)
    with pytest.raises(ValueError):
        TrafficGenerator(bad_rate=1.5)
    with pytest.raises(ValueError):
        topic_for("orders", Settings())
