"""Raw input record to typed event, or the reason it must go to dead letters.

Shared by the live agents and `vigil replay` so both accept and reject the same records: the
value must decode (app.contract.decode) and, where the record's key is known, the key must be the id
the contract keys that topic by (see `app.contract.deadletters.key_error` for why).

Also shared: `failure`, the one per-record guard's verdict when processing a record raised, so
a worker and a replay dead-letter such a record with the same reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from app.contract import jsontext
from app.contract.deadletters import key_error
from app.contract.decode import PanError, decode_cart_event, decode_feedback, decode_transaction
from app.contract.events import CartEvent, Feedback, Transaction
from app.contract.pan import looks_like_pan, mask
from app.exceptions import DecodeError

log = logging.getLogger(__name__)

E = TypeVar("E", Transaction, Feedback, CartEvent)

#: Passed as `key` when the record's key is not known (bare event lines in replay).
UNKNOWN_KEY: Final = object()

#: Longest `internal error: ...` reason (the exception's type and the start of its message).
INTERNAL_ERROR_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a record cannot be processed: a readable sentence and a bounded kind (metric label).

    `masked`: the record held a raw card number; its dead letter must store `key` and `payload`
    (the number masked) instead of the record's own key and bytes.
    """

    error: str
    kind: str
    masked: bool = False
    key: bytes | str | None = None
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class Intake(Generic[E]):
    """How one input topic is decoded and which field its key must equal."""

    decode: Callable[[bytes | str], E]
    key_field: str

    def __call__(self, value: bytes | str | None, key: bytes | str | object | None) -> E | Rejected:
        verdict = self._check(value, key)
        if isinstance(verdict, Rejected) and not verdict.masked:
            return _mask_rejected(verdict, value, key)
        return verdict

    def _check(self, value: bytes | str | None, key: bytes | str | object | None) -> E | Rejected:
        if value is None:
            return Rejected("value: missing (null record)", "json")
        try:
            event = self.decode(value)
        except PanError as exc:
            return _pan_rejected(exc, value, key)
        except DecodeError as exc:
            return Rejected(exc.message, exc.kind)
        if key is not UNKNOWN_KEY:
            problem = key_error(self.key_field, key, getattr(event, self.key_field))  # type: ignore[arg-type]
            if problem is not None:
                return Rejected(problem, "key")
        return event


def failure(exc: BaseException) -> Rejected:
    """The verdict on a record whose processing raised: the one guard of agents and replay.

    A `DecodeError` raised past decoding (e.g. an `add_to_cart` that would take a cart line past
    the quantity bound) is the record's fault and keeps its reason; anything else is a bug or
    corrupt state: logged, and the record dead-lettered as `internal error: ...`, short.
    """
    if isinstance(exc, DecodeError):
        return Rejected(exc.message, exc.kind)
    log.error("processing failed; record sent to dead letters", exc_info=exc)
    try:
        detail = f"{type(exc).__name__}: {exc}"
    except Exception:  # a broken __str__ must not break the guard
        detail = type(exc).__name__
    detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates
    return Rejected(jsontext.shorten(f"internal error: {detail}", INTERNAL_ERROR_CHARS), "internal")


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


def _key_text(key: bytes | str | object | None) -> str | None:
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    return key if isinstance(key, str) else None


def _is_pan_key(key: bytes | str | object | None) -> bool:
    text = _key_text(key)
    return text is not None and looks_like_pan(text)


def _mask_key(key: bytes | str | object | None, pan: str | None) -> bytes | str | None:
    text = _key_text(key)
    if text is None:
        return None
    masked = text.replace(pan, mask(pan)) if pan else text
    if looks_like_pan(masked):
        masked = mask(masked)
    return masked.encode() if isinstance(key, bytes) else masked


# A card_id holding a card number in text that did not decode (truncated, corrupted).
_CARD_ID_TEXT: Final = re.compile(rb'"card_id"\s*:\s*"([0-9 -]{13,37})"')


def _mask_rejected(verdict: Rejected, value: bytes | str | None, key: object) -> Rejected:
    """Whatever else is wrong with a record, a raw card number in its key or in a `card_id`
    its bytes still show is masked in the dead letter (and the reason)."""
    text = _key_text(key)
    pan_key = text is not None and looks_like_pan(text)
    raw = _bytes(value)
    pans = [] if raw is None or b"card_id" not in raw else _CARD_ID_TEXT.findall(raw)
    pans = [p for p in pans if looks_like_pan(p.decode())]
    if not pan_key and not pans:
        return verdict
    error = verdict.error
    if pan_key:
        assert text is not None
        error = error.replace(text, mask(text))
    for pan in pans:
        assert raw is not None
        raw = raw.replace(pan, mask(pan.decode()).encode())
        error = error.replace(pan.decode(), mask(pan.decode()))
    key_out = _mask_key(key, None) if pan_key else key
    return Rejected(error, verdict.kind, True, key_out, raw)  # type: ignore[arg-type]


def _pan_rejected(exc: PanError, value: bytes | str, key: bytes | str | object | None) -> Rejected:
    """The record with its card number masked in key, payload and reason."""
    raw = _bytes(value) or b""
    text = raw.decode("utf-8", "replace")
    if "\\u" in text or text.count('"card_id"') != 1:
        # Digits written as escapes, or card_id given twice: keep the record as decoded.
        obj = {**exc.obj, "card_id": mask(exc.pan)}
        text = jsontext.dumps(obj).decode("utf-8", "replace")
    payload = text.replace(exc.pan, mask(exc.pan)).encode()
    return Rejected(exc.message, "pan", True, _mask_key(key, exc.pan), payload)


TRANSACTIONS: Final = Intake(decode_transaction, "card_id")
FEEDBACK: Final = Intake(decode_feedback, "txn_id")
CART_EVENTS: Final = Intake(decode_cart_event, "user_id")
