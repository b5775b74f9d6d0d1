"""Shared steps for the machine tests: feed events to one user's state, as the engine would."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from app.cart.config import CartConfig
from app.cart.machine import CartOutput, apply
from app.cart.state import CartState
from app.contract.events import CartEvent
from tests.unit.cart.timeline import HOUR, MIN, T0

TIMEOUT = 30 * MIN
DETECTED = T0 + 99 * HOUR  # an arbitrary, recognisable detection instant

MakeEvent = Callable[..., CartEvent]  # the `make_event` fixture


def run(
    events: Iterable[CartEvent], cfg: CartConfig, state: CartState | None = None
) -> tuple[CartState, list[CartOutput]]:
    outputs: list[CartOutput] = []
    for event in events:
        state, produced = apply(state, event, cfg, DETECTED)
        outputs.extend(produced)
    assert state is not None
    return state, outputs


def kinds(outputs: list[CartOutput]) -> list[str]:
    return [o.kind for o in outputs]
