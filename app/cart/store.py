"""Where the engine keeps cart states: a dict in replay and tests, a Faust table when live.

The engine only needs get/set/delete, so the live agent can hand it an adapter over its
RocksDB-backed table (which serialises with `CartState.to_bytes`) without this package importing
Faust.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from app.cart.state import CartState


class CartStore(Protocol):
    """Per-user cart states, keyed by user_id."""

    def get(self, user_id: str) -> CartState | None: ...

    def set(self, user_id: str, state: CartState) -> None: ...

    def delete(self, user_id: str) -> None: ...


class DictCartStore:
    """The in-memory `CartStore` of `vigil replay` and the tests."""

    __slots__ = ("_states",)

    def __init__(self) -> None:
        self._states: dict[str, CartState] = {}

    def get(self, user_id: str) -> CartState | None:
        return self._states.get(user_id)

    def set(self, user_id: str, state: CartState) -> None:
        self._states[user_id] = state

    def delete(self, user_id: str) -> None:
        self._states.pop(user_id, None)

    def __len__(self) -> int:
        return len(self._states)

    def items(self) -> Iterator[tuple[str, CartState]]:
        """Every (user_id, state), e.g. to rebuild timers or report open carts."""
        return iter(list(self._states.items()))
