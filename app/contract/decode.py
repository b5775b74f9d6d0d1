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

from app.contract import jsontext
from app.contract.events import CART_EVENT_TYPES, MAX_QUANTITY, CartEvent, Feedback, Transaction
from app.contract.pan import looks_like_pan, mask
from app.contract.timeutil import parse_ts
from app.exceptions import DecodeError

# Exact matches: fullmatch (a `$` would also match before a final newline) and ASCII only.
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
_COUNTRY = re.compile(r"[A-Z]{2}", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)

E = TypeVar("E")

_show = jsontext.show


class PanError(DecodeError):
    """The record's `card_id` is a raw card number: masked wherever the record is kept."""

    def __init__(self, field: str, pan: str, obj: Mapping[str, Any]) -> None:
        super().__init__(
            f"{field}: looks like a raw card number ({mask(pan)}), not a token; not processed",
            "pan",
        )
        self.pan = pan
        self.obj = obj


def load_object(raw: bytes | str) -> dict[str, Any]:
    """Parse a JSON object within the contract's limits; else a DecodeError with the reason.

    At most 1 MiB and 64 levels deep; unknown fields may hold any valid JSON (`1e999`, lone
    surrogate escapes): see `app.contract.jsontext`.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data) > jsontext.MAX_VALUE_BYTES:
        raise DecodeError(
            f"value: larger than 1 MiB ({len(data)} bytes, at most {jsontext.MAX_VALUE_BYTES})",
            "json",
        )
    obj = jsontext.loads(data)
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
    _unicode(field, value)
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
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            number = math.inf
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(Decimal(text)) if _DECIMAL.fullmatch(text) else math.nan
        except (InvalidOperation, ValueError):
            number = math.nan
    else:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise DecodeError(f"{field}: must be a finite number >= 0, got {_show(value)}", "value")
    return number


def _currency(obj: Mapping[str, Any], field: str = "currency", required: bool = True) -> str | None:
    value = _string(obj, field, required)
    if value is not None and not _CURRENCY.fullmatch(value):
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
    if not -limit <= value <= limit:  # false for NaN, +-inf and any huge integer
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
        _unicode(field, value)
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DecodeError(f"{field}: must be a string, got {_show(value)}", "type")


def _unicode(field: str, value: str) -> None:
    """Text Vigil keeps or writes out must be real Unicode: no lone surrogate escapes."""
    if jsontext.has_surrogate(value):
        raise DecodeError(
            f"{field}: not valid Unicode (lone surrogate), got {_show(value)}", "value"
        )


def _no_pan(obj: Mapping[str, Any], field: str = "card_id") -> None:
    """Checked before any other field, so no other reason can quote or keep a raw number."""
    value = obj.get(field)
    if isinstance(value, str) and looks_like_pan(value):
        raise PanError(field, value, obj)


def transaction_from(obj: Mapping[str, Any]) -> Transaction:
    """Validate a decoded JSON object as a transaction."""
    _no_pan(obj)
    lat = _coordinate(obj, "lat", 90)
    lon = _coordinate(obj, "lon", 180)
    country = _string(obj, "country", required=False)
    if country is not None and not _COUNTRY.fullmatch(country):
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
    _no_pan(obj)
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
    if (
        isinstance(quantity, bool)
        or not isinstance(quantity, int)
        or not 1 <= quantity <= MAX_QUANTITY
    ):
        raise DecodeError(
            f"quantity: must be an integer >= 1 and <= {MAX_QUANTITY}, got {_show(quantity)}",
            "value",
        )
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
