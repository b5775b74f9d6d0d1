"""Per-user cart state (`app.cart.state.CartState` as bytes) and the per-partition cart clock.

The pending abandonment deadline is part of each user's state, so timers are exactly as
durable as the carts: the in-memory deadline index (`app.cart.timers.TimerIndex`) is rebuilt
from this table when a partition is assigned. The clock table holds each partition's highest
cart-event ts (key: the partition number), so event time never goes backwards on restart.
"""

from __future__ import annotations

from app.runtime.faust_app import bytes_table
from app.runtime.service import app, settings

carts = bytes_table(
    app,
    settings,
    "carts",
    # Apply the changelog in larger batches on recovery (Faust's default is 1 000 records).
    recovery_buffer_size=10_000,
    help="CartState per user_id: items, episode, last activity, pending deadline.",
)

cart_clocks = bytes_table(
    app,
    settings,
    "cart-clocks",
    help="Highest cart-event ts seen per partition (key: partition number).",
)
