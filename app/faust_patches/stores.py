"""Table stores only move forward: Faust's recovery never writes an older changelog record
over what a store already holds.

Vigil writes a partition's RocksDB at each checkpoint, after Kafka committed it, together with
the changelog offset the write reflects (`app.runtime.partitions.TableStore.write`). Faust's
recovery applies changelog records to the same stores (`Store.apply_changelog_batch`), and it
keeps reading and applying them while the streams of partitions it is not recovering already
flow: after a rebalance that kept partition 2 and added partition 1, partition 2's events were
processed and checkpointed while Faust's recovery was still fetching partition 2's changelog
(seen in the chaos run: its recovery ended 3.5 s later). The batch it then applied held the
records of an earlier checkpoint and wrote them over the newer values; the next event of that
card was judged on state 10 transactions old (an impossible-travel alert replay never gave),
and the store's offset moved back. Upstream, Faust assumes it is the only writer of a store
during recovery (cf. faust-streaming #323 and #502 for the rebalance shapes where it is not).

The patch: a record at an offset at or below the store's persisted offset for its partition is
already reflected (or superseded) there and is skipped; the rest is applied as Faust does. The
persisted offset therefore never decreases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

PRIVATE_NAMES: tuple[tuple[str, str, str], ...] = (
    ("faust.stores.rocksdb", "Store", "persisted_offset"),
)
PATCHED: tuple[tuple[str, str, str], ...] = (
    ("faust.stores.rocksdb", "Store", "apply_changelog_batch"),
)


def newer_than_store(store: Any, batch: Iterable[Any]) -> tuple[list[Any], int]:
    """The events of `batch` past the persisted offset of their partition's store, in order,
    and how many were skipped."""
    persisted: dict[Any, int] = {}
    kept: list[Any] = []
    skipped = 0
    for event in batch:
        tp = event.message.tp
        if tp not in persisted:
            offset = store.persisted_offset(tp)
            persisted[tp] = -1 if offset is None else offset
        if event.message.offset <= persisted[tp]:
            skipped += 1
        else:
            kept.append(event)
    return kept, skipped


def install() -> None:
    """Patch Faust's RocksDB store (idempotent)."""
    from faust.stores.rocksdb import Store

    if getattr(Store.apply_changelog_batch, "__vigil__", False):
        return
    original = Store.apply_changelog_batch

    def apply_changelog_batch(
        store: Any,
        batch: Iterable[Any],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        events, skipped = newer_than_store(store, batch)
        if skipped:
            log.info("changelog records already in the store skipped: %d", skipped)
        if events:
            original(store, events, to_key, to_value)

    apply_changelog_batch.__vigil__ = True  # type: ignore[attr-defined]
    Store.apply_changelog_batch = apply_changelog_batch  # type: ignore[method-assign,assignment]
