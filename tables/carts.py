"""Per-user cart state (`app.cart.state.CartState` as bytes) and the per-partition cart clock.

The pending abandonment deadline is part of each user's state, so timers are exactly as
durable as the carts: the in-memory deadline index (`app.cart.timers.TimerIndex`) is rebuilt
from this table when a partition is assigned. The clock table holds each partition's highest
cart-event ts (key: the partition number), so event time never goes backwards on restart.
"""

from __future__ import annotations

from app.faust_app import rocksdb_options
from app.main import app, settings

carts = app.Table(
    "carts",
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
    options=rocksdb_options(settings),
    # Apply the changelog in larger batches on recovery (Faust's default is 1 000 records).
    recovery_buffer_size=10_000,
    help="CartState per user_id: items, episode, last activity, pending deadline.",
)

cart_clocks = app.Table(
    "cart-clocks",
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
    options=rocksdb_options(settings),
    help="Highest cart-event ts seen per partition (key: partition number).",
)
