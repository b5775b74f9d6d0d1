"""Hostile input: the contract's limits, exact matching, short quotes, raw card numbers, and the
per-record guard of `vigil replay` (shared with the agents' loop)."""

from __future__ import annotations

import orjson
import pytest

from app.cart.engine import CartEngine
from app.cart.machine import CartLimitError
from app.contract.decode import decode_cart_event, decode_transaction, load_object
from app.contract.intake import CART_EVENTS, FEEDBACK, TRANSACTIONS, Rejected, failure
from app.contract.jsontext import MAX_VALUE_BYTES, dumps, loads, text_depth
from app.contract.pan import looks_like_pan, luhn_ok, mask
from app.detect.fraud import FraudDetector
from app.exceptions import DecodeError
from app.replay import Record, Replayer, read_records, run_replay
from app.settings import Settings

PAN = "4111111111111111"  # a Visa test number: passes Luhn
TS = "2026-11-22T10:00:00.250Z"


def _error(decode, raw: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        decode(raw)
    return info.value.message


def _with_extra(raw: bytes, text: str) -> bytes:
    """Insert an unknown field whose value is the JSON text `text` (not re-serialised)."""
    return raw[:-1] + b',"extra":' + text.encode() + b"}"


class TestSizeAndDepth:
    def test_value_over_one_mib_is_rejected_with_its_size(self, txn_bytes):
        raw = txn_bytes(padding="x" * MAX_VALUE_BYTES)
        message = _error(decode_transaction, raw)
        assert message.startswith("value: larger than 1 MiB") and len(message) < 120

    def test_value_just_under_one_mib_is_fine(self, txn_bytes):
        raw = txn_bytes(padding="")
        raw = txn_bytes(padding="x" * (MAX_VALUE_BYTES - len(raw)))
        assert len(raw) == MAX_VALUE_BYTES
        assert decode_transaction(raw).txn_id == "t-9f2"

    def test_sixty_four_levels_are_fine(self, txn_bytes):
        assert decode_transaction(_with_extra(txn_bytes(), "[" * 63 + "]" * 63)).txn_id

    @pytest.mark.parametrize("depth", [65, 200, 1100, 5000])
    def test_deeper_than_sixty_four_has_its_own_reason(self, txn_bytes, depth):
        raw = _with_extra(txn_bytes(), "[" * (depth - 1) + "]" * (depth - 1))
        assert _error(decode_transaction, raw) == "value: nested deeper than 64 levels"

    def test_deep_and_invalid_is_rejected_not_raised(self):
        assert "nested deeper" in _error(decode_transaction, b"[" * 100_000)

    def test_text_depth_skips_strings(self):
        assert text_depth(b'{"a":"[[[[\\"[[","b":[{}]}') == 3


class TestUnknownFieldsHoldAnyValidJson:
    @pytest.mark.parametrize(
        "extra",
        ["1e999", "-1e999", "9" * 5000, '"\\ud800"', '{"\\udc00": [1e400]}', '"\\u0000"'],
    )
    def test_ignored(self, txn_bytes, extra):
        assert decode_transaction(_with_extra(txn_bytes(), extra)).txn_id == "t-9f2"

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
    def test_nan_and_infinity_literals_are_not_json(self, txn_bytes, literal):
        message = _error(decode_transaction, _with_extra(txn_bytes(), literal))
        assert message.startswith("value: not valid UTF-8 JSON")

    def test_huge_number_in_a_known_field_is_not_finite(self, txn_bytes):
        raw = txn_bytes()[:-1] + b',"amount":1e999}'
        assert _error(decode_transaction, raw) == "amount: must be a finite number >= 0, got 1e999"

    def test_lone_surrogate_in_a_known_field(self, txn_bytes):
        raw = txn_bytes()[:-1] + b',"merchant_id":"m\\ud800"}'
        message = _error(decode_transaction, raw)
        assert message == 'merchant_id: not valid Unicode (lone surrogate), got "m\\ud800"'
        orjson.dumps(message)  # writable

    def test_duplicated_keys_last_wins(self, txn_bytes):
        raw = txn_bytes()[:-1] + b',"currency":"USD"}'
        assert decode_transaction(raw).currency == "USD"

    def test_dumps_round_trips_what_loads_read(self):
        text = b'{"a":1e999,"b":"\\ud800","c":[1,{"d":-1e400}]}'
        assert dumps(loads(text)) == text


class TestTimestamps:
    @pytest.mark.parametrize(
        "ts, ms",
        [
            ("2026-11-22T10:00:00.250Z", 1795341600250),
            ("2026-11-22T10:00:00.2509999999999Z", 1795341600250),
            ("2026-11-22T10:00:00.2Z", 1795341600200),
            ("2026-11-22T11:00:00.25+01:00", 1795341600250),
            ("1970-01-01T00:00:00Z", 0),
            ("2200-01-01T00:00:00Z", 7_258_118_400_000),
            (0, 0),
            (7_258_118_400_000, 7_258_118_400_000),
        ],
    )
    def test_accepted(self, txn_bytes, ts, ms):
        assert decode_transaction(txn_bytes(ts=ts)).ts == ms

    @pytest.mark.parametrize(
        "ts",
        [
            "2026-11-22T10:00:00Z\n",
            "2026-11-22T10:00:00.250Z\n",
            "1969-12-31T23:59:59.999Z",
            "2200-01-01T00:00:00.001Z",
            "9999-12-31T23:59:59Z",
            "٢٠٢٦-11-22T10:00:00Z",
            -1,
            7_258_118_400_001,
            1.5e12,
        ],
    )
    def test_rejected(self, txn_bytes, ts):
        assert _error(decode_transaction, txn_bytes(ts=ts)).startswith("ts: ")

    def test_error_quotes_at_most_sixty_characters(self, txn_bytes):
        message = _error(decode_transaction, txn_bytes(ts="2026" + "9" * 100_000))
        assert len(message) < 140


class TestExactCodes:
    @pytest.mark.parametrize("currency", ["EUR\n", " EUR", "EUR ", "eur", "\uff25\uff35\uff32"])
    def test_currency(self, txn_bytes, currency):
        assert _error(decode_transaction, txn_bytes(currency=currency)).startswith("currency: ")

    @pytest.mark.parametrize("country", ["FR\n", "fr", "FRA"])
    def test_country(self, txn_bytes, country):
        assert _error(decode_transaction, txn_bytes(country=country)).startswith("country: ")

    @pytest.mark.parametrize("amount", ["1_000", "٤٢", "42.50\x00"])
    def test_decimal_strings_are_ascii_decimals(self, txn_bytes, amount):
        assert _error(decode_transaction, txn_bytes(amount=amount)).startswith("amount: ")

    def test_cart_currency(self, cart_bytes):
        assert _error(decode_cart_event, cart_bytes(currency="EUR\n")).startswith("currency: ")


class TestQuantity:
    @pytest.mark.parametrize("quantity", [1, 1_000_000])
    def test_bounds_accepted(self, cart_bytes, quantity):
        assert decode_cart_event(cart_bytes(quantity=quantity)).quantity == quantity

    @pytest.mark.parametrize("quantity", ["0", "1000001", str(2**63), "1" + "0" * 30, "1.0", '"2"'])
    def test_out_of_bounds(self, cart_bytes, quantity):
        raw = cart_bytes()[:-1] + f',"quantity":{quantity}}}'.encode()
        message = _error(decode_cart_event, raw)
        assert message.startswith("quantity: must be an integer >= 1 and <= 1000000")

    def test_a_line_past_the_bound_is_refused_and_changes_nothing(self, cart_bytes):
        engine = CartEngine()
        engine.process(decode_cart_event(cart_bytes(quantity=600_000)))
        before = engine.store.get("u-8")
        with pytest.raises(CartLimitError) as info:
            engine.process(decode_cart_event(cart_bytes(quantity=400_001, ts=TS)))
        assert info.value.kind == "value"
        assert "would exceed 1000000" in info.value.message
        assert engine.store.get("u-8") == before
        engine.process(decode_cart_event(cart_bytes(quantity=400_000)))  # exactly the bound
        assert engine.store.get("u-8").items["sku-12"].quantity == 1_000_000


class TestKeyErrorsAreShort:
    def test_long_key_and_id_are_cut(self, txn_bytes):
        verdict = TRANSACTIONS(txn_bytes(card_id="c" * 100_000), b"k" * 100_000)
        assert isinstance(verdict, Rejected) and verdict.kind == "key"
        assert len(verdict.error) < 200


class TestRawCardNumbers:
    def test_luhn_and_mask(self):
        assert luhn_ok(PAN) and not luhn_ok("4111111111111112")
        assert mask(PAN) == "411111******1111"
        assert mask("4111 1111 1111 1111") == "4111 11** **** 1111"
        assert looks_like_pan("4111-1111-1111-1111")
        assert not looks_like_pan("4111111111111112")
        assert not looks_like_pan("411111111111")  # 12 digits
        assert not looks_like_pan("tok_4111111111111111")
        assert not looks_like_pan("٤١١١١١١١١١١١١١١١")

    def test_transaction_with_a_pan_is_masked_everywhere(self, txn_bytes):
        verdict = TRANSACTIONS(txn_bytes(card_id=PAN, amount="abc"), PAN.encode())
        assert isinstance(verdict, Rejected)
        assert (verdict.kind, verdict.masked) == ("pan", True)
        assert verdict.key == b"411111******1111"
        assert PAN not in verdict.error and "411111******1111" in verdict.error
        assert PAN.encode() not in verdict.payload
        assert orjson.loads(verdict.payload)["card_id"] == "411111******1111"
        assert orjson.loads(verdict.payload)["amount"] == "abc"  # the rest as it came

    def test_escaped_digits_and_duplicate_card_ids_are_masked_too(self, txn_bytes):
        escaped = txn_bytes(card_id="X")[:-1] + b',"card_id":"\\u0034111111111111111"}'
        doubled = txn_bytes(card_id="4012888888881881")[:-1] + f',"card_id":"{PAN}"}}'.encode()
        for raw in (escaped, doubled):
            verdict = TRANSACTIONS(raw, PAN)
            assert isinstance(verdict, Rejected) and verdict.kind == "pan"
            assert b"4111111111111111" not in verdict.payload
            assert b"4012888888881881" not in verdict.payload
            assert b"\\u0034111" not in verdict.payload
            assert verdict.key == "411111******1111"

    def test_pan_key_with_a_token_value_is_masked(self, txn_bytes):
        verdict = TRANSACTIONS(txn_bytes(), PAN.encode())
        assert isinstance(verdict, Rejected) and verdict.kind == "key" and verdict.masked
        assert PAN not in verdict.error and verdict.key == b"411111******1111"

    def test_pan_in_feedback_card_id(self, feedback_bytes):
        verdict = FEEDBACK(feedback_bytes(card_id=PAN), b"t-9f2")
        assert isinstance(verdict, Rejected) and verdict.kind == "pan"
        assert PAN.encode() not in verdict.payload and verdict.key == b"t-9f2"

    def test_tokens_and_non_luhn_numbers_pass(self, txn_bytes):
        for card in ("tok_4c1a", "4111111111111112", "12345"):
            assert not isinstance(TRANSACTIONS(txn_bytes(card_id=card), card), Rejected)

    def test_replay_dead_letter_holds_no_raw_number(self, tmp_path, txn_bytes):
        src = tmp_path / "in.jsonl"
        line = {"topic": "transactions", "key": PAN, "value": txn_bytes(card_id=PAN).decode()}
        src.write_bytes(orjson.dumps(line) + b"\n")
        run_replay([str(src)], tmp_path / "out", Settings())
        text = (tmp_path / "out" / "dead-letters.jsonl").read_text()
        assert PAN not in text and "411111******1111" in text
        dead = orjson.loads(text)
        assert dead["key"] == "411111******1111"


class TestReplayGuard:
    def _cart_line(self, quantity: int) -> bytes:
        value = {
            "event_id": f"e-{quantity}",
            "user_id": "u-1",
            "type": "add_to_cart",
            "product_id": "p-1",
            "price": 1.5,
            "currency": "EUR",
            "quantity": quantity,
            "ts": TS,
        }
        return orjson.dumps({"topic": "cart-events", "key": "u-1", "value": value})

    def test_quantity_overflow_no_longer_stops_replay(self, tmp_path):
        src = tmp_path / "in.jsonl"
        lines = [self._cart_line(2**63), self._cart_line(2**63), self._cart_line(3)]
        src.write_bytes(b"\n".join(lines) + b"\n")
        counts = run_replay([str(src)], tmp_path / "out", Settings())
        assert counts["dead-letters.jsonl"] == 2
        dead = (tmp_path / "out" / "dead-letters.jsonl").read_bytes().splitlines()
        assert all(b"quantity: must be an integer" in line for line in dead)

    def test_line_past_the_bound_is_dead_lettered_and_state_kept(self, tmp_path):
        replayer = Replayer(Settings())
        records = list(
            read_records([self._cart_line(600_000), self._cart_line(400_001)], topic=None)
        )
        assert replayer.feed(records[0]) == []
        dead = replayer.feed(records[1])
        assert [o.kind for o in dead] == ["dead_letters"]
        assert dead[0].value["error"].startswith("quantity: adding 400001 to the 600000")
        assert replayer.carts.store.get("u-1").items["p-1"].quantity == 600_000

    def test_a_raising_record_is_dead_lettered_and_its_changes_undone(
        self, monkeypatch, cart_bytes
    ):
        replayer = Replayer(Settings())
        good = Record("cart-events", "u-8", cart_bytes(quantity=2))
        replayer.feed(good)
        before = replayer.carts.store.get("u-8")
        import app.cart.engine as engine_module

        real_apply = engine_module.apply

        def exploding(*args, **kwargs):
            state, _outputs = real_apply(*args, **kwargs)
            replayer.carts.store.set("u-8", state)  # half-applied ...
            raise TypeError("boom " + "x" * 1000)  # ... then a bug

        monkeypatch.setattr(engine_module, "apply", exploding)
        out = replayer.feed(Record("cart-events", "u-8", cart_bytes(quantity=3, event_id="e-2")))
        assert [o.kind for o in out] == ["dead_letters"]
        error = out[0].value["error"]
        assert error.startswith("internal error: TypeError: boom") and len(error) <= 200
        assert replayer.carts.store.get("u-8") == before
        assert replayer.carts.pending_timers == 1

    def test_a_raising_transaction_leaves_the_card_as_it_was(self, monkeypatch, txn_bytes):
        replayer = Replayer(Settings())
        replayer.feed(Record("transactions", "tok_4c1a", txn_bytes()))
        before = replayer.cards["tok_4c1a"].to_bytes()

        config = replayer.detector.config

        def exploding(self, txn, state, places):
            state.add(txn, config)  # the detector updates the state in place ...
            raise ValueError("detector bug")  # ... then fails

        learned = replayer.learner.offset
        monkeypatch.setattr(FraudDetector, "hits", exploding)
        out = replayer.feed(Record("transactions", "tok_4c1a", txn_bytes(txn_id="t-2")))
        assert out[0].value["error"] == "internal error: ValueError: detector bug"
        assert replayer.cards["tok_4c1a"].to_bytes() == before
        assert replayer.learner.offset == learned  # nothing of it reached the learner
        assert "t-2" not in replayer.learner.examples

    def test_failure_keeps_decode_reasons(self):
        assert failure(DecodeError("quantity: too many", "value")) == Rejected(
            "quantity: too many", "value"
        )
        assert failure(KeyError("k")).kind == "internal"


class TestKcatPayloadObject:
    def test_object_payload_is_decoded_as_the_value(self, txn_bytes):
        line = orjson.dumps(
            {"topic": "transactions", "key": "tok_4c1a", "payload": orjson.loads(txn_bytes())}
        )
        (record,) = read_records([line], topic=None)
        assert decode_transaction(record.value).txn_id == "t-9f2"

    def test_payload_that_is_not_an_object_is_kept_in_the_dead_letter(self):
        line = b'{"topic":"transactions","key":"k","payload":[1,2,1e999]}'
        (record,) = read_records([line], topic=None)
        (dead,) = Replayer(Settings()).feed(record)
        assert dead.value["payload"] == "[1,2,1e999]"
        assert dead.value["error"] == "value: must be a JSON object, got list"

    def test_null_payload_is_a_null_record(self):
        (record,) = read_records([b'{"topic":"transactions","key":"k","payload":null}'], None)
        assert TRANSACTIONS(record.value, record.key) == Rejected(
            "value: missing (null record)", "json"
        )

    def test_envelope_with_huge_numbers_and_surrogates_keeps_the_value(self, txn_bytes):
        value = _with_extra(txn_bytes(), '{"n":1e999,"s":"\\ud800"}').decode()
        line = b'{"topic":"transactions","key":"tok_4c1a","value":' + value.encode() + b"}"
        (record,) = read_records([line], topic=None)
        assert record.error is None
        assert decode_transaction(record.value).txn_id == "t-9f2"


def test_load_object_accepts_str():
    assert load_object('{"a": 1}') == {"a": 1}


class TestFoundByFuzzing:
    BIG = "9" * 400  # valid JSON; orjson refuses it, the standard library reads an int

    @pytest.mark.parametrize("field", ["amount", "lat", "lon"])
    def test_huge_integers_in_numeric_fields(self, txn_bytes, field):
        raw = txn_bytes()[:-1] + f',"{field}":{self.BIG}}}'.encode()
        message = _error(decode_transaction, raw)
        assert message.startswith(f"{field}: ") and len(message) < 150

    def test_huge_epoch_is_quoted_short(self, txn_bytes):
        raw = txn_bytes()[:-1] + f',"ts":{self.BIG}}}'.encode()
        message = _error(decode_transaction, raw)
        assert message.startswith("ts: epoch milliseconds out of range") and len(message) < 120

    def test_card_number_in_a_record_that_does_not_decode_is_masked(self, txn_bytes):
        raw = txn_bytes(card_id=PAN)[:-5]  # truncated: not JSON any more
        verdict = TRANSACTIONS(raw, "k")
        assert isinstance(verdict, Rejected) and verdict.kind == "json" and verdict.masked
        assert PAN.encode() not in verdict.payload and b"411111******1111" in verdict.payload

    def test_card_number_as_the_key_of_any_topic_is_masked(self, cart_bytes):
        verdict = CART_EVENTS(cart_bytes(), PAN.encode())
        assert isinstance(verdict, Rejected) and verdict.kind == "key"
        assert verdict.key == b"411111******1111" and PAN not in verdict.error
