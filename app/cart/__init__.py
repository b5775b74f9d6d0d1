"""Cart abandonment: the pure core shared by the live agent and `vigil replay`.

No Faust, no Kafka, no clock reads here: `machine` holds the contract's rules for one user,
`engine` the order in which events and timers are processed, `timers`, `clock` and `store` the
pieces it is made of, `state` what is kept per user and how it is stored.
"""

from app.cart.clock import EventClock
from app.cart.config import CartConfig
from app.cart.engine import CartEngine
from app.cart.machine import CartOutput, CartOutputKind, apply, event_id, fire
from app.cart.state import Abandonment, CartState, CartStateError, Item, cart_value
from app.cart.store import CartStore, DictCartStore
from app.cart.timers import TimerIndex

__all__ = [
    "Abandonment",
    "CartConfig",
    "CartEngine",
    "CartOutput",
    "CartOutputKind",
    "CartState",
    "CartStateError",
    "CartStore",
    "DictCartStore",
    "EventClock",
    "Item",
    "TimerIndex",
    "apply",
    "cart_value",
    "event_id",
    "fire",
]
