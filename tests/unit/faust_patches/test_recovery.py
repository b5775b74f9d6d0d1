"""Bulk restore's write step, and the capped idle wait, without a broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
import rocksdict

from app.faust_patches.recovery import IDLE_TIMEOUT_S, _apply, _RecoveryAsyncio


@dataclass
class Record:
    key: bytes
    value: bytes | None
    offset: int


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class Store:
    """Faust's rocksdb store as the restore uses it: a DB per partition and an offset key."""

    def __init__(self, path: str) -> None:
        options = rocksdict.Options(raw_mode=True)
        self.db = rocksdict.Rdict(path, options=options)
        self.offsets: dict[TP, int] = {}

    def _db_for_partition(self, partition: int) -> rocksdict.Rdict:
        return self.db

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.offsets[tp] = offset


def test_apply_puts_values_deletes_tombstones_and_records_the_last_offset(tmp_path):
    store = Store(str(tmp_path / "db"))
    tp = TP("app-cards-changelog", 2)
    applied = _apply(
        store,
        tp,
        [
            Record(b"a", b"1", 10),
            Record(b"b", b"2", 11),
            Record(b"a", b"3", 12),  # a later state of the same key wins
            Record(b"b", None, 14),  # a tombstone removes it
        ],
    )
    assert applied == 4
    assert store.db.get(b"a") == b"3"
    assert store.db.get(b"b") is None
    assert store.offsets == {tp: 14}
    store.db.close()


def test_apply_of_nothing_leaves_the_offset_alone(tmp_path):
    store = Store(str(tmp_path / "db"))
    assert _apply(store, TP("t", 0), []) == 0
    assert store.offsets == {}
    store.db.close()


async def test_recovery_idle_wait_is_capped():
    shim = _RecoveryAsyncio()
    never = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(asyncio.TimeoutError):
        await shim.wait_for(never, timeout=5.0)  # Faust's 5 s idle wait
    assert loop.time() - started < 5.0  # capped, not the 5 s Faust asked for
    assert IDLE_TIMEOUT_S < 1.0
    assert shim.sleep is asyncio.sleep  # everything else is the real module


async def test_a_rebalance_met_by_a_stop_does_not_reopen_the_closing_stores(monkeypatch):
    """SIGTERM during a rebalance: Faust closes the tables' stores while the assignment
    callback still runs; its recovery must not open them again (RocksDB's lock: exit 1)."""
    from types import SimpleNamespace

    from faust.tables import recovery as faust_recovery

    from app.faust_patches import recovery

    calls: list[str] = []

    async def original(*args, **kwargs):
        calls.append("faust recovery")

    async def restore(app, client_kwargs):
        calls.append("bulk restore")
        app.should_stop = calls.count("bulk restore") == 1  # the signal arrives meanwhile

    monkeypatch.setattr(faust_recovery.Recovery, "on_rebalance", original)
    monkeypatch.setattr(recovery, "bulk_restore", restore)
    recovery.install({})
    app = SimpleNamespace(should_stop=False, consumer_generation_id=7)
    fake = SimpleNamespace(app=app, buffers={})
    await faust_recovery.Recovery.on_rebalance(fake, set(), set(), set(), 7)
    assert calls == ["bulk restore"]
    app.should_stop = False  # a later rebalance of a worker that is not stopping
    await faust_recovery.Recovery.on_rebalance(fake, set(), set(), set(), 7)
    assert calls == ["bulk restore", "bulk restore", "faust recovery"]
