"""Per-card fraud state (`app.detect.state.CardState` as bytes), keyed by `card_id`.

Co-partitioned with `transactions`: the changelog has the same partition count, and a card's
state lives in the partition its key hashes to. Recovered from the changelog on restart or
rebalance, so a burst that straddles a restart is still counted.
"""

from __future__ import annotations

from app.runtime.faust_app import bytes_table
from app.runtime.service import app, settings

cards = bytes_table(
    app,
    settings,
    "cards",
    # Apply the changelog in larger batches on recovery (Faust's default is 1 000 records).
    recovery_buffer_size=10_000,
    help="CardState per card_id: recent (ts, amount), running mean/M2, last location, txn ids.",
)
