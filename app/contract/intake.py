"""Raw input record to typed event, or the reason it must go to dead letters.

Shared by the live agents and `vigil replay` so both accept and reject the same records: the
value must decode (app.contract.decode) and, where the record's key is known, the key must be the id
the contract keys that topic by (see `app.contract.deadletters.key_error` for why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from app.contract.deadletters import key_error
from app.contract.decode import decode_cart_event, decode_feedback, decode_transaction
from app.contract.events import CartEvent, Feedback, Transaction
from app.exceptions import DecodeError

E = TypeVar("E", Transaction, Feedback, CartEvent)

#: Passed as `key` when the record's key is not known (bare event lines in replay).
UNKNOWN_KEY: Final = object()


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a record cannot be processed: a readable sentence and a bounded kind (metric label)."""

    error: str
    kind: str


@dataclass(frozen=True, slots=True)
class Intake(Generic[E]):
    """How one input topic is decoded and which field its key must equal."""

    decode: Callable[[bytes | str], E]
    key_field: str

    def __call__(self, value: bytes | str | None, key: bytes | str | object | None) -> E | Rejected:
        if value is None:
            return Rejected("value: missing (null record)", "json")
        try:
            event = self.decode(value)
        except DecodeError as exc:
            return Rejected(exc.message, exc.kind)
        if key is not UNKNOWN_KEY:
            problem = key_error(self.key_field, key, getattr(event, self.key_field))  # type: ignore[arg-type]
            if problem is not None:
                return Rejected(problem, "key")
        return event


TRANSACTIONS: Final = Intake(decode_transaction, "card_id")
FEEDBACK: Final = Intake(decode_feedback, "txn_id")
CART_EVENTS: Final = Intake(decode_cart_event, "user_id")
