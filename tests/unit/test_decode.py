"""Every field rule of the contract's decoding, for the three input topics."""

from __future__ import annotations

import math

import pytest

from app.contract.decode import decode_cart_event, decode_feedback, decode_transaction
from app.exceptions import DecodeError


def _error(decode, raw: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        decode(raw)
    return info.value.message


class TestTransaction:
    def test_contract_example_decodes(self, txn_bytes):
        txn = decode_transaction(txn_bytes())
        assert (txn.txn_id, txn.card_id, txn.amount, txn.currency) == (
            "t-9f2",
            "tok_4c1a",
            42.5,
            "EUR",
        )
        assert (txn.merchant_id, txn.terminal_id, txn.country) == ("m-77", "pos-3", "FR")
        assert (txn.lat, txn.lon, txn.ts) == (48.857, 2.352, 1795341600250)

    def test_unknown_fields_are_ignored(self, txn_bytes):
        assert decode_transaction(txn_bytes(extra={"x": 1}, color="blue")).txn_id == "t-9f2"

    @pytest.mark.parametrize(
        "amount, expected", [(42.5, 42.5), (0, 0.0), ("0.00", 0.0), ("1e2", 100.0), (7, 7.0)]
    )
    def test_amount_number_or_decimal_string(self, txn_bytes, amount, expected):
        assert decode_transaction(txn_bytes(amount=amount)).amount == expected

    @pytest.mark.parametrize(
        "amount", ["abc", -0.01, "-5", "NaN", "Infinity", "1e999", True, [], {}, ""]
    )
    def test_amount_must_be_finite_and_non_negative(self, txn_bytes, amount):
        message = _error(decode_transaction, txn_bytes(amount=amount))
        assert message.startswith("amount: must be a finite number >= 0, got ")

    def test_amount_error_quotes_the_value(self, txn_bytes):
        assert (
            _error(decode_transaction, txn_bytes(amount="abc"))
            == 'amount: must be a finite number >= 0, got "abc"'
        )

    @pytest.mark.parametrize(
        "field", ["txn_id", "card_id", "amount", "currency", "merchant_id", "ts"]
    )
    def test_required_fields(self, txn_bytes, missing, field):
        assert _error(decode_transaction, txn_bytes(**{field: missing})) == f"{field}: required"

    @pytest.mark.parametrize("field", ["txn_id", "card_id", "merchant_id"])
    def test_ids_must_be_non_empty_strings(self, txn_bytes, field):
        assert _error(decode_transaction, txn_bytes(**{field: 17})).startswith(
            f"{field}: must be a string"
        )
        assert (
            _error(decode_transaction, txn_bytes(**{field: " "})) == f"{field}: must not be empty"
        )

    @pytest.mark.parametrize("currency", ["eur", "EURO", "EU", 978, "E1R"])
    def test_currency_iso_4217(self, txn_bytes, currency):
        assert _error(decode_transaction, txn_bytes(currency=currency)).startswith(
            "currency: must be"
        )

    @pytest.mark.parametrize("country", ["fra", "F", "fr"])
    def test_country_alpha_2(self, txn_bytes, country):
        assert _error(decode_transaction, txn_bytes(country=country)).startswith(
            "country: must be an ISO 3166"
        )

    @pytest.mark.parametrize(
        "field, value",
        [("lat", 90.1), ("lat", -91), ("lon", 180.5), ("lat", "48.8"), ("lon", True)],
    )
    def test_coordinates(self, txn_bytes, field, value):
        assert _error(decode_transaction, txn_bytes(**{field: value})).startswith(
            f"{field}: must be"
        )

    def test_optional_fields_may_be_absent_or_null(self, txn_bytes, missing):
        txn = decode_transaction(
            txn_bytes(terminal_id=missing, country=None, lat=missing, lon=missing)
        )
        assert txn.terminal_id is None and txn.country is None and txn.lat is None

    def test_numeric_mcc_is_kept_as_text(self, txn_bytes):
        assert decode_transaction(txn_bytes(mcc=5411)).mcc == "5411"


class TestTimestamps:
    @pytest.mark.parametrize(
        "ts, expected",
        [
            ("2026-11-22T10:00:00.250Z", 1795341600250),
            ("2026-11-22T10:00:00Z", 1795341600000),
            ("2026-11-22T11:00:00.250+01:00", 1795341600250),
            ("2026-11-22T05:30:00.250-04:30", 1795341600250),
            ("2026-11-22T10:00:00.250999Z", 1795341600250),
            (1795341600250, 1795341600250),
        ],
    )
    def test_both_forms(self, txn_bytes, ts, expected):
        assert decode_transaction(txn_bytes(ts=ts)).ts == expected

    @pytest.mark.parametrize(
        "ts",
        [
            "2026-11-22T10:00:00",
            "2026-11-22",
            "yesterday",
            "2026-13-22T10:00:00Z",
            "2026-11-22T25:00:00Z",
            1795341600.25,
            True,
            -1,
            10**16,
            "1795341600250",
        ],
    )
    def test_bad_timestamps(self, txn_bytes, ts):
        assert _error(decode_transaction, txn_bytes(ts=ts)).startswith("ts: ")


class TestNotAnObject:
    @pytest.mark.parametrize(
        "raw", [b"not json", b"", b"[1,2]", b'"text"', b"\xff\xfe{}", b'{"amount": NaN}']
    )
    def test_rejected_with_reason(self, raw):
        message = _error(decode_transaction, raw)
        assert message.startswith("value: ")

    def test_kind_is_a_bounded_word(self):
        with pytest.raises(DecodeError) as info:
            decode_transaction(b"{")
        assert info.value.kind == "json"


class TestFeedback:
    def test_contract_example(self, feedback_bytes):
        fb = decode_feedback(feedback_bytes())
        assert (fb.txn_id, fb.label, fb.terminal_id, fb.ts, fb.place) == (
            "t-9f2",
            "fraud",
            "pos-3",
            1795860000000,
            "t:pos-3",
        )

    def test_place_falls_back_to_merchant(self, feedback_bytes, missing):
        assert (
            decode_feedback(feedback_bytes(terminal_id=missing, merchant_id="m-1")).place == "m:m-1"
        )

    @pytest.mark.parametrize("label", ["FRAUD", "maybe", 1, ""])
    def test_label(self, feedback_bytes, label):
        assert _error(decode_feedback, feedback_bytes(label=label)).startswith("label: ")

    @pytest.mark.parametrize("field", ["txn_id", "label", "ts"])
    def test_required(self, feedback_bytes, missing, field):
        assert _error(decode_feedback, feedback_bytes(**{field: missing})) == f"{field}: required"


class TestCartEvent:
    def test_contract_example(self, cart_bytes):
        ev = decode_cart_event(cart_bytes())
        assert (
            ev.event_id,
            ev.user_id,
            ev.type,
            ev.product_id,
            ev.quantity,
            ev.price,
            ev.currency,
            ev.session_id,
        ) == ("e-1", "u-8", "add_to_cart", "sku-12", 2, 19.99, "EUR", "s-3")

    @pytest.mark.parametrize(
        "kind", ["view", "add_to_cart", "remove_from_cart", "begin_checkout", "purchase"]
    )
    def test_every_type(self, cart_bytes, kind):
        assert decode_cart_event(cart_bytes(type=kind)).type == kind

    @pytest.mark.parametrize("kind", ["checkout", "ADD_TO_CART", 3])
    def test_unknown_type(self, cart_bytes, kind):
        assert _error(decode_cart_event, cart_bytes(type=kind)).startswith("type: ")

    @pytest.mark.parametrize("field", ["product_id", "price", "currency"])
    def test_required_for_add_to_cart(self, cart_bytes, missing, field):
        assert _error(decode_cart_event, cart_bytes(**{field: missing})) == f"{field}: required"

    @pytest.mark.parametrize("field", ["product_id", "price", "currency"])
    def test_optional_for_other_types(self, cart_bytes, missing, field):
        assert decode_cart_event(cart_bytes(type="view", **{field: missing})).type == "view"

    def test_quantity_defaults_to_one(self, cart_bytes, missing):
        assert decode_cart_event(cart_bytes(quantity=missing)).quantity == 1

    @pytest.mark.parametrize("quantity", [0, -1, 1.5, "2", True])
    def test_quantity_integer_at_least_one(self, cart_bytes, quantity):
        assert _error(decode_cart_event, cart_bytes(quantity=quantity)).startswith(
            "quantity: must be an integer >= 1"
        )

    def test_price_rules_match_amount(self, cart_bytes):
        assert decode_cart_event(cart_bytes(price="19.99")).price == 19.99
        assert _error(decode_cart_event, cart_bytes(price=-1)).startswith(
            "price: must be a finite number >= 0"
        )

    @pytest.mark.parametrize("field", ["event_id", "user_id", "type", "ts"])
    def test_required(self, cart_bytes, missing, field):
        assert _error(decode_cart_event, cart_bytes(**{field: missing})) == f"{field}: required"


def test_decoded_amount_is_finite_float(txn_bytes):
    assert math.isfinite(decode_transaction(txn_bytes(amount="123456789.123")).amount)
