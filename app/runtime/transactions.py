"""Per-partition state transactions: the local store is never ahead of committed Kafka state.

The model is Kafka Streams' and Quix Streams' state stores. Every input partition (a Faust
topic-partition *group*: co-partitioned topics such as cart events and cart ticks share one)
has a `PartitionTransaction` while this worker owns it:

- an event's handler reads through it (its staged writes first, then the partition's RocksDB)
  and stages its table writes and output records in it; a handler that raises has everything
  it staged rolled back (`rollback_event`), so an event is either applied whole or not at all;
- at every checkpoint the `Checkpointer` (`app.runtime.checkpoint`) takes what was staged
  and, per partition: one changelog record per changed key (the latest value), the outputs
  and the input offsets go to Kafka together: in the partition's own Kafka transaction under
  exactly_once; or sent, acked, and then the offsets committed under at_least_once (a failed
  send fails the checkpoint, and nothing is committed past it);
- only after Kafka accepted that, the staged changes are written to RocksDB in one write batch,
  together with the changelog offset they reflect.

So RocksDB holds committed state only. A worker killed at any moment restarts on its store as
it is and reads the changelog from the offset the store records: the tail committed after the
last RocksDB write, never a full rebuild, never a wipe. A checkpoint that fails leaves RocksDB
at the previous checkpoint, consistent with the offsets Kafka has: the caller drops the staged
work (the partition's events are read again from the committed offsets).

This module knows nothing of Faust: `app.faust_patches` wires it into Faust's commit and
rebalance paths, and the unit tests drive it with an in-memory Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from app.exceptions import VigilError

log = logging.getLogger(__name__)

#: Faust's bookkeeping keys in every partition's RocksDB start with this (its changelog offset).
FAUST_KEY_PREFIX = b"__faust"

_MISSING: Any = object()


class CheckpointError(VigilError):
    """Kafka did not accept a checkpoint: nothing of it reached RocksDB; the work is redone."""

    retriable = True


class TableStore(Protocol):
    """One table partition's local store (a RocksDB)."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...

    def write(self, changes: Mapping[bytes, bytes | None], changelog_offset: int) -> None:
        """Apply `changes` (None deletes) and record `changelog_offset`, in one write batch."""
        ...


class StateTable(Protocol):
    """A changelogged table: its name, its changelog topic and its per-partition stores."""

    name: str
    changelog_topic: str

    def store(self, partition: int) -> TableStore: ...


class Output:
    """One record an event writes to an output topic (sent at the checkpoint)."""

    __slots__ = ("key", "partition", "topic", "value")

    def __init__(self, topic: str, key: bytes | None, value: bytes, partition: int) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.partition = partition


class Staged:
    """What a partition's events staged since the last checkpoint, taken as one unit."""

    __slots__ = ("offsets", "outputs", "sent", "tables")

    def __init__(
        self,
        tables: dict[StateTable, dict[bytes, bytes | None]],
        outputs: list[Output],
        offsets: dict[Any, int],
        sent: list[Any] | None = None,
    ) -> None:
        self.tables = tables
        self.outputs = outputs
        self.offsets = offsets
        #: at_least_once: delivery futures of outputs sent ahead of this checkpoint
        #: (`PartitionTransaction.take_outputs`): acked, or the checkpoint fails.
        self.sent = sent if sent is not None else []

    @property
    def changelog_records(self) -> int:
        return sum(len(changes) for changes in self.tables.values())


#: Events a partition skips while it waits for the records of a seek back (`continuity`)
#: before it seeks again.
MAX_WAITS = 10_000


class PartitionTransaction:
    """Staged table writes, outputs and input offsets of one owned partition (group).

    Reads see the staged writes first. `begin_event` / `end_event` / `rollback_event` bracket
    one event, so a handler that fails half way stages nothing.
    """

    __slots__ = (
        "_early",
        "_inflight",
        "_next",
        "_offsets",
        "_outputs",
        "_outputs_mark",
        "_sought",
        "_staged",
        "_stores",
        "_undo",
        "halted",
        "partition",
        "state_updates",
        "transactional_id",
    )

    def __init__(self, transactional_id: str, partition: int) -> None:
        self.transactional_id = transactional_id
        self.partition = partition
        self._staged: dict[StateTable, dict[bytes, bytes | None]] = {}
        #: What a running checkpoint took and has not yet written to RocksDB: events staged
        #: meanwhile read it (under the staged writes, over the store).
        self._inflight: dict[StateTable, dict[bytes, bytes | None]] | None = None
        self._outputs: list[Output] = []
        self._early: list[Any] = []  # futures of outputs sent ahead of the checkpoint
        self._offsets: dict[Any, int] = {}
        #: Per input partition, the offset after the last event this transaction took (across
        #: checkpoints, for as long as this worker owns the partition).
        self._next: dict[Any, int] = {}
        #: Per input partition, the offset of an event that came after a hole, while the
        #: partition is sought back to the hole's start (see `continuity`).
        self._sought: dict[Any, list[int]] = {}  # tp -> [offset, events skipped since]
        self._undo: list[tuple[dict[bytes, bytes | None], bytes, Any]] = []
        self._outputs_mark = 0
        self._stores: dict[StateTable, TableStore] = {}
        #: Table writes staged since the last checkpoint (several may hit one key).
        self.state_updates = 0
        #: Set when Kafka refused this partition's checkpoint: its events are skipped (not
        #: staged, not committed) until a rebalance hands the partition out afresh.
        self.halted = False

    # --- reads and writes of a handler -------------------------------------------------------

    def _store(self, table: StateTable) -> TableStore:
        store = self._stores.get(table)
        if store is None:
            store = self._stores[table] = table.store(self.partition)
        return store

    def get(self, table: StateTable, key: bytes) -> bytes | None:
        """The value of `key`: as staged in this transaction, else as a running checkpoint
        is committing it, else as stored (committed)."""
        staged = self._staged.get(table)
        if staged is not None:
            value = staged.get(key, _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[no-any-return]
        if self._inflight is not None:
            inflight = self._inflight.get(table)
            if inflight is not None:
                value = inflight.get(key, _MISSING)
                if value is not _MISSING:
                    return value  # type: ignore[no-any-return]
        return self._store(table).get(key)

    def put(self, table: StateTable, key: bytes, value: bytes | None) -> None:
        """Stage `value` for `key` (None: delete); it reaches RocksDB after the Kafka commit."""
        staged = self._staged.get(table)
        if staged is None:
            staged = self._staged[table] = {}
        self._undo.append((staged, key, staged.get(key, _MISSING)))
        staged[key] = value
        self.state_updates += 1

    def delete(self, table: StateTable, key: bytes) -> None:
        self.put(table, key, None)

    def items(self, table: StateTable) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of the partition as this transaction sees it (Faust keys too)."""
        staged = self._staged.get(table, {})
        inflight = (self._inflight or {}).get(table, {})
        for key, value in self._store(table).items():
            if key not in staged and key not in inflight:
                yield key, value
        for key, inflight_value in inflight.items():
            if inflight_value is not None and key not in staged:
                yield key, inflight_value
        for key, staged_value in staged.items():
            if staged_value is not None:
                yield key, staged_value

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int) -> None:
        """Stage an output record; it becomes visible with the checkpoint that commits it."""
        self._outputs.append(Output(topic, key, value, partition))

    # --- event brackets ----------------------------------------------------------------------

    def already_taken(self, tp: Any, offset: int) -> bool:
        """Whether the event at `offset` of `tp` was taken before (staged or committed).

        Faust seeks a partition back to its committed offset at the end of a rebalance's
        recovery, also when the partition kept flowing meanwhile (it was not recovering):
        its events from the committed offset on are then delivered a second time, some of
        them staged already. Each is taken once, in offset order.
        """
        return offset < self._next.get(tp, -1)

    def continuity(self, tp: Any, offset: int) -> str:
        """ "take", "seek" or "wait": whether the event at `offset` follows the last one taken.

        The offsets of an input partition come one after the other, but for transaction
        markers and compacted records (holes Kafka has no record for). Faust may also drop
        fetched records (a fetch batch cut short by a rebalance, or events skipped while its
        flow was suspended) and go on past them without seeking back: committing past such a
        hole would lose its records (seen in make chaos: 558 transactions of one partition).
        So at a hole the partition is sought back to its start ("seek": skip this event);
        events fetched before that seek, beyond the hole, are skipped ("wait"); the first one
        fetched after it is taken whatever its offset, since Kafka then had no record before it.
        """
        expected = self._next.get(tp)
        if expected is None or offset == expected:
            self._sought.pop(tp, None)
            return "take"
        sought = self._sought.get(tp)
        if sought is None:
            self._sought[tp] = [offset, 0]
            return "seek"
        if offset <= sought[0]:  # fetched after the seek: what Kafka holds from the hole on
            del self._sought[tp]
            return "take"
        sought[1] += 1
        if sought[1] > MAX_WAITS:  # the seek's records never came (deleted meanwhile?): again
            self._sought[tp] = [offset, 0]
            return "seek"
        return "wait"

    def next_offset(self, tp: Any) -> int | None:
        """The offset after the last event of `tp` taken (None before the first)."""
        return self._next.get(tp)

    def begin_event(self) -> None:
        self._undo.clear()
        self._outputs_mark = len(self._outputs)

    def rollback_event(self) -> None:
        """Undo every write and output staged since `begin_event`."""
        for staged, key, previous in reversed(self._undo):
            if previous is _MISSING:
                del staged[key]
            else:
                staged[key] = previous
        self.state_updates -= len(self._undo)
        self._undo.clear()
        del self._outputs[self._outputs_mark :]

    def end_event(self, tp: Any, offset: int) -> None:
        """The event at `offset` of `tp` is whole: the next checkpoint commits past it."""
        self._undo.clear()
        self._offsets[tp] = self._next[tp] = offset + 1

    # --- checkpoint --------------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        return bool(self._offsets or self._outputs or self._staged or self._early)

    def take_outputs(self) -> list[Output]:
        """at_least_once: hand the outputs staged so far to be sent ahead of the checkpoint.

        Called between events only (handlers are synchronous), so every output taken belongs
        to a whole event. Their delivery futures come back through `sent_ahead`; the next
        checkpoint waits for them before it commits any offset.
        """
        outputs = self._outputs
        self._outputs = []
        self._outputs_mark = 0
        return outputs

    def sent_ahead(self, futures: list[Any]) -> None:
        """The delivery futures of outputs `take_outputs` handed out."""
        self._early.extend(futures)

    def take(self) -> Staged:
        """Hand everything staged to a checkpoint and start empty.

        The table writes taken stay readable (`get`, `items`) until the checkpoint has
        written them to RocksDB (`settle`), so events go on being staged while it runs.
        """
        tables = self._staged
        if self._inflight is not None:  # not settled: its checkpoint failed (never expected
            # here: a refused checkpoint halts the partition); keep both, the newer on top
            merged = {t: dict(changes) for t, changes in self._inflight.items()}
            for table, changes in tables.items():
                merged.setdefault(table, {}).update(changes)
            tables = merged
        self._inflight = tables or None
        staged = Staged(tables, self._outputs, self._offsets, self._early)
        self._staged, self._outputs, self._offsets, self._early = {}, [], {}, []
        self._undo.clear()
        self._outputs_mark = 0
        self.state_updates = 0
        return staged

    def settle(self, staged: Staged) -> None:
        """`staged` (what `take` returned) is in RocksDB now: reads go to the store again."""
        if self._inflight is staged.tables:
            self._inflight = None
