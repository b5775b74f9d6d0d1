"""`app.faust_patches.stores`: Faust's recovery never writes an older changelog record over what
a store holds (Faust's real RocksDB store, no broker)."""

from __future__ import annotations

from types import SimpleNamespace

import faust
import pytest
from faust.types import TP, Message

from app import faust_patches


def _event(partition: int, offset: int, key: bytes, value: bytes | None) -> SimpleNamespace:
    message = Message("app-cards-changelog", partition, offset, 0.0, 0, {}, key, value, None)
    return SimpleNamespace(message=message)


@pytest.fixture
def store(tmp_path):
    faust_patches.install(None, {})
    app = faust.App("stores-test", store="rocksdb://", datadir=str(tmp_path))
    table = app.Table("cards", partitions=4)
    yield table.data
    for db in list(table.data._dbs.values()):
        db.close()


def test_records_the_store_already_reflects_are_skipped_newer_ones_applied(store):
    tp = TP("app-cards-changelog", 2)
    # Vigil's checkpoint wrote the newest value with the changelog offset it reflects...
    db = store._db_for_partition(2)
    db.put(b"card-054", b"after offset 133")
    store.set_persisted_offset(tp, 133)
    # ... then Faust's recovery applies a batch it fetched earlier, plus what came after.
    batch = [
        _event(2, 126, b"card-054", b"after offset 126"),
        _event(2, 130, b"card-007", None),
        _event(2, 133, b"card-054", b"after offset 133 (again)"),
        _event(2, 140, b"card-099", b"after offset 140"),
    ]
    store.apply_changelog_batch(batch, to_key=lambda k: k, to_value=lambda v: v)
    assert db.get(b"card-054") == b"after offset 133"
    assert db.get(b"card-099") == b"after offset 140"
    assert store.persisted_offset(tp) == 140


def test_a_batch_entirely_behind_the_store_changes_nothing(store):
    tp = TP("app-cards-changelog", 1)
    db = store._db_for_partition(1)
    db.put(b"k", b"new")
    store.set_persisted_offset(tp, 50)
    store.apply_changelog_batch(
        [_event(1, 10, b"k", b"old"), _event(1, 11, b"k", None)],
        to_key=lambda k: k,
        to_value=lambda v: v,
    )
    assert db.get(b"k") == b"new"
    assert store.persisted_offset(tp) == 50


def test_an_empty_store_takes_every_record(store):
    tp = TP("app-cards-changelog", 3)
    store.apply_changelog_batch(
        [_event(3, 0, b"a", b"1"), _event(3, 1, b"a", b"2")],
        to_key=lambda k: k,
        to_value=lambda v: v,
    )
    assert store._db_for_partition(3).get(b"a") == b"2"
    assert store.persisted_offset(tp) == 1
