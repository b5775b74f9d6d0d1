"""Bytes to typed events, or a readable reason why not.

One decoder serves the live agents and `vigil replay`, so both accept and reject exactly the
same records. Every rule of the contract's "Values" paragraphs lives here; a failure raises
`DecodeError` with a sentence naming the field and the offending value, which becomes the
dead letter's `error`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import orjson

from app.contract.events import CART_EVENT_TYPES, CartEvent, Feedback, Transaction
from app.contract.timeutil import parse_ts
from app.exceptions import DecodeError

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_SHOWN = 60  # characters of an offending value quoted in an error

E = TypeVar("E")


def _show(value: object) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, float) else repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def load_object(raw: bytes | str) -> dict[str, Any]:
    """Parse a JSON object; anything else (not UTF-8, not JSON, an array) is a DecodeError."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"value: not valid UTF-8 JSON ({exc.msg})", "json") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"value: must be a JSON object, got {type(obj).__name__}", "json")
    return obj


def _string(obj: Mapping[str, Any], field: str, required: bool = True) -> str | None:
    value = obj.get(field)
    if value is None:
        if required:
            raise DecodeError(f"{field}: required", "missing")
        return None
    if not isinstance(value, str):
        raise DecodeError(f"{field}: must be a string, got {_show(value)}", "type")
    if required and not value.strip():
        raise DecodeError(f"{field}: must not be empty", "value")
    return value


def _req(obj: Mapping[str, Any], field: str) -> str:
    value = _string(obj, field)
    assert value is not None
    return value


def _number(obj: Mapping[str, Any], field: str, required: bool = True) -> float | None:
    """A finite number >= 0, given as a JSON number or a decimal string (`"42.50"`)."""
    value = obj.get(field)
    if value is None:
        if required:
            raise DecodeError(f"{field}: required", "missing")
        return None
    if isinstance(value, bool):
        number = math.nan
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(Decimal(value.strip())) if value.strip() else math.nan
        except (InvalidOperation, ValueError):
            number = math.nan
    else:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise DecodeError(f"{field}: must be a finite number >= 0, got {_show(value)}", "value")
    return number


def _currency(obj: Mapping[str, Any], field: str = "currency", required: bool = True) -> str | None:
    value = _string(obj, field, required)
    if value is not None and not _CURRENCY.match(value):
        raise DecodeError(
            f"{field}: must be an ISO 4217 code of 3 upper-case letters, got {_show(value)}",
            "value",
        )
    return value


def _coordinate(obj: Mapping[str, Any], field: str, limit: float) -> float | None:
    value = obj.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(f"{field}: must be a number, got {_show(value)}", "type")
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise DecodeError(
            f"{field}: must be between -{limit:g} and {limit:g}, got {_show(value)}", "value"
        )
    return float(value)


def _optional_text(obj: Mapping[str, Any], field: str) -> str | None:
    """Optional identifiers: strings, or numbers that producers often send instead (`mcc`)."""
    value = obj.get(field)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DecodeError(f"{field}: must be a string, got {_show(value)}", "type")


def transaction_from(obj: Mapping[str, Any]) -> Transaction:
    """Validate a decoded JSON object as a transaction."""
    lat = _coordinate(obj, "lat", 90)
    lon = _coordinate(obj, "lon", 180)
    country = _string(obj, "country", required=False)
    if country is not None and not _COUNTRY.match(country):
        raise DecodeError(
            "country: must be an ISO 3166 alpha-2 code (2 upper-case letters), "
            f"got {_show(country)}",
            "value",
        )
    return Transaction(
        txn_id=_req(obj, "txn_id"),
        card_id=_req(obj, "card_id"),
        amount=_number(obj, "amount"),  # type: ignore[arg-type]
        currency=_currency(obj),  # type: ignore[arg-type]
        merchant_id=_req(obj, "merchant_id"),
        ts=parse_ts(_present(obj, "ts")),
        terminal_id=_optional_text(obj, "terminal_id"),
        mcc=_optional_text(obj, "mcc"),
        country=country,
        lat=lat,
        lon=lon,
        device_id=_optional_text(obj, "device_id"),
        channel=_optional_text(obj, "channel"),
    )


def feedback_from(obj: Mapping[str, Any]) -> Feedback:
    """Validate a decoded JSON object as a fraud-feedback label."""
    label = _req(obj, "label")
    if label not in ("fraud", "legit"):
        raise DecodeError(f'label: must be "fraud" or "legit", got {_show(label)}', "value")
    return Feedback(
        txn_id=_req(obj, "txn_id"),
        label=label,  # type: ignore[arg-type]
        ts=parse_ts(_present(obj, "ts")),
        card_id=_optional_text(obj, "card_id"),
        merchant_id=_optional_text(obj, "merchant_id"),
        terminal_id=_optional_text(obj, "terminal_id"),
    )


def cart_event_from(obj: Mapping[str, Any]) -> CartEvent:
    """Validate a decoded JSON object as a cart event."""
    kind = _req(obj, "type")
    if kind not in CART_EVENT_TYPES:
        raise DecodeError(
            f"type: must be one of {', '.join(sorted(CART_EVENT_TYPES))}, got {_show(kind)}",
            "value",
        )
    adding = kind == "add_to_cart"
    quantity = obj.get("quantity", 1)
    if quantity is None:
        quantity = 1
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise DecodeError(f"quantity: must be an integer >= 1, got {_show(quantity)}", "value")
    return CartEvent(
        event_id=_req(obj, "event_id"),
        user_id=_req(obj, "user_id"),
        type=kind,  # type: ignore[arg-type]
        ts=parse_ts(_present(obj, "ts")),
        product_id=_string(obj, "product_id", required=adding),
        price=_number(obj, "price", required=adding),
        currency=_currency(obj, required=adding),
        quantity=quantity,
        session_id=_optional_text(obj, "session_id"),
    )


def _present(obj: Mapping[str, Any], field: str) -> Any:
    value = obj.get(field)
    if value is None:
        raise DecodeError(f"{field}: required", "missing")
    return value


def _decoder(build: Callable[[Mapping[str, Any]], E]) -> Callable[[bytes | str], E]:
    def decode(raw: bytes | str) -> E:
        return build(load_object(raw))

    decode.__doc__ = f"Decode raw bytes with {build.__name__}; raises DecodeError."
    return decode


decode_transaction = _decoder(transaction_from)
decode_feedback = _decoder(feedback_from)
decode_cart_event = _decoder(cart_event_from)
