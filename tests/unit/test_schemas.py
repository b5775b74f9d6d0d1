"""The published JSON Schemas (schemas/) and the decoder agree, and Vigil's outputs fit theirs.

* Every schema is a valid draft 2020-12 schema, one per topic of the contract, each linked
  from the README; every verdict below is the same with Python's `re` and with ECMA-262
  regular expressions (PyPI `regress`), as JavaScript validators read `pattern`.
* Every example of the contract and of the README validates.
* Every value the decoding tests (test_decode.py, test_hostile_input.py) give the decoder is
  recorded by a child pytest run (tests/unit/schema_capture.py): each one the decoder accepts
  validates against its topic's schema; each one it rejects is rejected by the schema too, or
  its reason is one of the schema's `x-vigil-semantic-rules` (what JSON Schema cannot say:
  Luhn, 1 MiB, lone surrogates, calendar dates, ...). A schema that starts accepting what the
  decoder refuses, or refusing what it accepts, fails here.
* The traffic generator's records (with malformed ones) and the chaos workload's agree the
  same way, and `vigil replay` over the generator's output writes only values that validate
  against the output topics' schemas, with no field a schema does not declare.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import regress
from jsonschema import Draft202012Validator, ValidationError, validators

from app.contract.decode import decode_cart_event, decode_feedback, decode_transaction
from app.devtools.generate import TrafficGenerator, to_bytes, topic_for, write_jsonl
from app.exceptions import DecodeError
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
INPUT_TOPICS = ("transactions", "fraud-feedback", "cart-events")
OUTPUT_TOPICS = (
    "fraud-alerts",
    "cart-abandoned",
    "cart-recovered",
    "vigil-dead-letters",
    "txn-scores",
)
DECODERS: dict[str, Callable[[bytes | str], Any]] = {
    "transactions": decode_transaction,
    "fraud-feedback": decode_feedback,
    "cart-events": decode_cart_event,
}
#: Replay's output files and the topic whose schema each line's value must fit.
REPLAY_FILES = {
    "fraud-alerts.jsonl": "fraud-alerts",
    "cart-abandoned.jsonl": "cart-abandoned",
    "cart-recovered.jsonl": "cart-recovered",
    "dead-letters.jsonl": "vigil-dead-letters",
    "txn-scores.jsonl": "txn-scores",
}


@cache
def schema(topic: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{topic}.schema.json").read_text())


@cache
def validator(topic: str) -> Draft202012Validator:
    return Draft202012Validator(schema(topic))


@cache
def _ecma_regex(pattern: str) -> regress.Regex:
    return regress.Regex(pattern, flags="u")


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, _schema: Any
) -> Iterator[ValidationError]:
    """`pattern` as JSON Schema defines it (ECMA-262, as in JavaScript validators), not as
    Python's `re` reads it: `$` before a final newline, `\\d` and `\\s` on Unicode differ."""
    if not validator.is_type(instance, "string"):
        return
    try:
        found = _ecma_regex(pattern).find(instance)
    except UnicodeEncodeError:  # a lone surrogate: any other non-space code point matches alike
        found = _ecma_regex(pattern).find(
            instance.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        )
    if found is None:
        yield ValidationError(f"{instance!r:.80} does not match {pattern!r} (ECMA-262)")


EcmaValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


@cache
def ecma_validator(topic: str) -> Any:
    return EcmaValidator(schema(topic))


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes) -> tuple[bool, Any]:
    """Strict JSON as a schema validator reads it (no NaN/Infinity); (False, why) if not."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # JSON has no limit on an integer's digits
    try:
        return True, json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        return False, f"{type(exc).__name__}: {exc}"[:120]
    finally:
        sys.set_int_max_str_digits(limit)


def semantic_rule(topic: str, error: str) -> str | None:
    """The semantic rule of `topic`'s schema that names this decoder reason, if one does."""
    for rule in schema(topic)["x-vigil-semantic-rules"]:
        if "decoder_error" in rule and re.search(rule["decoder_error"], error):
            return rule["rule"]
    return None


def schema_errors(topic: str, value: Any) -> list[str]:
    """Why `value` does not fit `topic`'s schema (none: it fits), asserting that both regex
    dialects agree: a schema must mean the same to a Python and to a JavaScript validator."""
    errors = [e.message for e in validator(topic).iter_errors(value)]
    ecma = [e.message for e in ecma_validator(topic).iter_errors(value)]
    assert bool(errors) == bool(ecma), f"{topic}: Python re says {errors}, ECMA-262 {ecma}"
    return errors


def check_agreement(topic: str, data: bytes, where: str) -> str:
    """Decoder and schema agree on one raw value; returns how (for the tally)."""
    try:
        DECODERS[topic](data)
        decoded, reason = True, ""
    except DecodeError as exc:
        decoded, reason = False, exc.message
    parsed, value = parse_json(data)
    if decoded:
        assert parsed, f"{where}: the decoder accepts what is not strict JSON: {value}"
        errors = schema_errors(topic, value)
        assert not errors, (
            f"{where}: decoded, but {topic}'s schema rejects it: {errors} {value!r:.300}"
        )
        return "both accept"
    if not parsed:
        assert reason.startswith("value: "), f"{where}: not JSON, yet the reason is {reason!r}"
        return "not JSON: no schema applies"
    if schema_errors(topic, value):
        return "both reject"
    rule = semantic_rule(topic, reason)
    assert rule is not None, (
        f"{where}: {topic}'s schema accepts a value the decoder rejects ({reason!r}), and no "
        f"x-vigil-semantic-rules entry names that reason: {data[:300]!r}"
    )
    return f"semantic: {rule}"


# -- the schemas themselves -------------------------------------------------------------------


def _contract_topics() -> dict[str, str]:
    """Topic -> direction from the contract's topic table: the repo's copy (docs/contract.md)
    and, where it sits beside the clone, the shared one (it may be a step ahead)."""
    topics: dict[str, str] = {}
    for path in (REPO / "docs" / "contract.md", REPO.parent / "shared" / "CONTRACT.md"):
        if path.exists():
            for m in re.finditer(r"^\| `([a-z-]+)` \| (in|out) \|", path.read_text(), re.M):
                topics[m.group(1)] = m.group(2)
    return topics


def test_one_valid_draft_2020_12_schema_per_contract_topic() -> None:
    files = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
    assert files == sorted(f"{t}.schema.json" for t in INPUT_TOPICS + OUTPUT_TOPICS)
    contract = _contract_topics()
    assert set(contract) <= set(INPUT_TOPICS + OUTPUT_TOPICS), contract
    assert set(contract) >= set(INPUT_TOPICS + OUTPUT_TOPICS) - {"txn-scores"}, contract
    for topic in INPUT_TOPICS + OUTPUT_TOPICS:
        s = schema(topic)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(s)
        assert s["x-vigil-topic"] == topic
        assert s["x-vigil-direction"] == ("in" if topic in INPUT_TOPICS else "out")
        assert contract.get(topic, s["x-vigil-direction"]) == s["x-vigil-direction"], topic
        for rule in s.get("x-vigil-semantic-rules", []):
            if "decoder_error" in rule:
                re.compile(rule["decoder_error"])


def test_the_readme_links_every_schema() -> None:
    readme = (REPO / "README.md").read_text()
    for path in SCHEMAS.glob("*.schema.json"):
        assert f"](schemas/{path.name})" in readme, path.name


def test_code_patterns_do_not_accept_a_final_newline() -> None:
    """Python's `$` matches before a final newline (ECMA-262's does not): the schemas must hold
    in both dialects, so codes carry lengths and timestamps end in a look-ahead."""
    assert schema_errors("transactions", {**CONTRACT_EXAMPLES["transactions"], "currency": "EUR\n"})
    assert schema_errors(
        "transactions", {**CONTRACT_EXAMPLES["transactions"], "ts": "2026-11-22T10:00:00Z\n"}
    )
    assert schema_errors("transactions", {**CONTRACT_EXAMPLES["transactions"], "amount": "-1"})
    # The ECMA-262 validator really reads patterns as ECMA-262 does (the dialects differ here).
    assert not list(Draft202012Validator({"pattern": "^a$"}).iter_errors("a\n"))
    assert list(EcmaValidator({"pattern": "^a$"}).iter_errors("a\n"))


# -- examples ---------------------------------------------------------------------------------


def _contract_examples() -> dict[str, dict[str, Any]]:
    text = (REPO / "docs" / "contract.md").read_text().split("## Examples", 1)[1]
    found = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z-]+)\s+(\{.*\})$", line)
        if m:
            found[m.group(1)] = json.loads(m.group(2))
    return found


CONTRACT_EXAMPLES = _contract_examples()


def test_every_contract_example_validates() -> None:
    assert set(CONTRACT_EXAMPLES) >= {*INPUT_TOPICS, "fraud-alerts", "cart-abandoned"}
    for topic, value in CONTRACT_EXAMPLES.items():
        if topic in INPUT_TOPICS:
            check = check_agreement(topic, json.dumps(value).encode(), f"contract {topic}")
            assert check == "both accept"
            continue
        # The contract elides the deterministic ids ("…"): put one of the documented form in.
        value = {k: ("0" * 32 if v == "…" else v) for k, v in value.items()}
        assert not schema_errors(topic, value), (topic, schema_errors(topic, value))


def test_every_readme_example_validates() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", readme, flags=re.S)]
    by_shape = {"alert_id": "fraud-alerts", "abandoned_at": "cart-abandoned"}
    checked = Counter()
    for value in blocks:
        topic = next((t for field, t in by_shape.items() if field in value), None)
        if topic is not None:
            assert not schema_errors(topic, value), (topic, schema_errors(topic, value))
            checked[topic] += 1
    assert set(checked) == set(by_shape.values()), checked


# -- the decoding tests' records --------------------------------------------------------------


PLAIN = ("-p", "no:cacheprovider", "-x")


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("capture") / "decoded.jsonl"
    tests = ["tests/unit/test_decode.py", "tests/unit/test_hostile_input.py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.unit.schema_capture", *PLAIN, *tests],
        cwd=REPO,
        env={**_env(), "VIGIL_SCHEMA_CAPTURE": str(out)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-2000:]
    return lines


def _env() -> dict[str, str]:
    """The environment without VIGIL_* settings: the child runs must see the defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}


def test_decoder_and_schemas_agree_on_every_record_of_the_decoding_tests(
    captured: list[dict[str, Any]],
) -> None:
    seen: set[tuple[str, str]] = set()
    tally: Counter[str] = Counter()
    for line in captured:
        if (line["topic"], line["raw"]) in seen:
            continue
        seen.add((line["topic"], line["raw"]))
        data = base64.b64decode(line["raw"])
        verdict = check_agreement(line["topic"], data, line["test"])
        assert (verdict == "both accept") == line["ok"], (line["test"], verdict, line)
        tally["semantic" if verdict.startswith("semantic") else verdict] += 1
    # Both directions and the semantic rules are exercised, not just one of them.
    assert tally["both accept"] >= 20 and tally["both reject"] >= 50, tally
    assert tally["semantic"] >= 10, tally


def test_every_semantic_rule_with_a_reason_is_met_by_some_decoding_test(
    captured: list[dict[str, Any]],
) -> None:
    """No dead entries: each listed decoder reason really is one the schema cannot see."""
    met: set[tuple[str, str]] = set()
    for line in captured:
        if line["ok"]:
            continue
        data = base64.b64decode(line["raw"])
        parsed, value = parse_json(data)
        if parsed and not schema_errors(line["topic"], value):
            rule = semantic_rule(line["topic"], line["error"])
            met.add((line["topic"], rule or ""))
    listed = {
        (t, r["rule"])
        for t in INPUT_TOPICS
        for r in schema(t)["x-vigil-semantic-rules"]
        if "decoder_error" in r and "Kafka key" not in r["rule"]
    }
    # Rules that only the transaction tests reach are listed for the other topics too (same
    # decoder code); require each rule to be met on at least one topic.
    rules_met = {r for _, r in met}
    assert {r for _, r in listed} <= rules_met, {r for _, r in listed} - rules_met


# -- generated traffic and replay's outputs ---------------------------------------------------

GENERATED = 20_000


@pytest.fixture(scope="module")
def generated() -> list[tuple[str, str, dict[str, Any] | bytes]]:
    return list(TrafficGenerator(seed=7, bad_rate=0.01).records(GENERATED))


def test_generated_and_chaos_records_agree_with_the_schemas(generated) -> None:
    from tests.chaos_workload import Input, workload

    settings = Settings()
    tally: Counter[str] = Counter()
    for i, (kind, _key, value) in enumerate(generated):
        topic = topic_for(kind, settings)
        tally[check_agreement(topic, to_bytes(value), f"generated record {i}")] += 1
    kinds = {"transactions": "transactions", "feedback": "fraud-feedback"}
    kinds["cart_events"] = "cart-events"
    for i, item in enumerate(workload(seed=3, steps=800, partitions=4)):
        if isinstance(item, Input):
            tally[check_agreement(kinds[item.kind], item.value, f"chaos record {i}")] += 1
    assert tally["both accept"] > GENERATED * 0.9 and tally["both reject"] > 0, tally


def _envelopes(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text().splitlines():
        yield json.loads(line)


def _undeclared(topic: str, value: dict[str, Any]) -> set[str]:
    return set(value) - set(schema(topic)["properties"])


def test_replay_outputs_validate_against_the_output_schemas(generated, tmp_path: Path) -> None:
    settings = Settings()
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, generated, settings)
    out = tmp_path / "out"
    # `vigil replay`, through the module its console script runs (app.cli:main).
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", str(inp), "--out", str(out)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts: Counter[str] = Counter()
    for name, topic in REPLAY_FILES.items():
        path = out / name
        if not path.exists():
            assert topic == "txn-scores", f"replay wrote no {name}"
            continue
        key_field = schema(topic)["x-vigil-key"]
        for n, envelope in enumerate(_envelopes(path)):
            value = envelope["value"]
            if topic == "vigil-dead-letters":
                # Replay leaves out `ts` (a worker's wall-clock time of the failure, meaningless
                # offline); everything else must fit the schema a live dead letter fits.
                assert "ts" not in value, value
                value = {**value, "ts": "1970-01-01T00:00:00.000Z"}
            errors = schema_errors(topic, value)
            assert not errors, f"{name} line {n + 1}: {errors} {value!r:.300}"
            assert not _undeclared(topic, value), (name, _undeclared(topic, value))
            if key_field in schema(topic)["properties"]:
                assert envelope["key"] == value[key_field], (name, n, envelope["key"])
            counts[topic] += 1
    for topic in ("fraud-alerts", "cart-abandoned", "cart-recovered", "vigil-dead-letters"):
        assert counts[topic] > 0, counts
