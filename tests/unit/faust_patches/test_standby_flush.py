"""What Faust's recovery buffered for standby partitions is applied before the bulk restore,
and only for partitions still assigned (tests/e2e/test_failover.py runs it for real)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from faust.types import TP

from app.faust_patches.recovery import flush_kept_buffers


@dataclass
class Message:
    tp: TP
    offset: int


@dataclass
class Event:
    message: Message


class Table:
    """Records what `apply_changelog_batch` was given (Faust's Table method of that name)."""

    def __init__(self) -> None:
        self.applied: list[list[Event]] = []

    def apply_changelog_batch(self, events: list[Event]) -> None:
        self.applied.append(list(events))


class Recovery:
    def __init__(self) -> None:
        self.buffers: defaultdict[Table, list[Event]] = defaultdict(list)


def test_kept_partitions_are_applied_in_order_and_revoked_ones_dropped():
    cards, carts = Table(), Table()
    kept, gone = TP("app-cards-changelog", 0), TP("app-cards-changelog", 1)
    cart_tp = TP("app-carts-changelog", 0)
    recovery = Recovery()
    recovery.buffers[cards] += [Event(Message(kept, 5)), Event(Message(gone, 9))]
    recovery.buffers[cards].append(Event(Message(kept, 6)))
    recovery.buffers[carts].append(Event(Message(cart_tp, 3)))

    applied = flush_kept_buffers(recovery, {kept, cart_tp})

    assert applied == 3
    assert [[e.message.offset for e in batch] for batch in cards.applied] == [[5, 6]]
    assert [[e.message.offset for e in batch] for batch in carts.applied] == [[3]]
    # Emptied: Faust's own flush at the next recovery start must not apply them again,
    # behind what the bulk restore wrote.
    assert all(not buffer for buffer in recovery.buffers.values())


def test_nothing_buffered_applies_nothing():
    table = Table()
    recovery = Recovery()
    recovery.buffers[table] = []
    assert flush_kept_buffers(recovery, {TP("t", 0)}) == 0
    assert table.applied == []
