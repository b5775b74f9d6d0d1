"""Vigil's state tables over Faust's RocksDB tables: what `app.runtime.transactions` reads
through and writes to at checkpoint (one write batch with the changelog offset it reflects)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.runtime.transactions import TableStore


class RocksTableStore:
    """`TableStore` over one partition's RocksDB of a Faust table (rocksdict)."""

    __slots__ = ("_db", "_offset_key")

    def __init__(self, db: Any, offset_key: bytes) -> None:
        self._db = db
        self._offset_key = offset_key

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self._db.items()  # type: ignore[no-any-return]

    def write(self, changes: Mapping[bytes, bytes | None], changelog_offset: int) -> None:
        import rocksdict

        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(self._offset_key, str(changelog_offset).encode())
        self._db.write(batch)


class FaustStateTable:
    """`StateTable` over a Faust RocksDB table: its changelog and per-partition stores."""

    def __init__(self, table: Any) -> None:
        from app import faust_patches

        self.table = table
        self.name: str = table.name
        self.changelog_topic: str = table.changelog_topic.get_topic_name()
        self._store_of = faust_patches.partition_store

    def store(self, partition: int) -> TableStore:
        db, offset_key = self._store_of(self.table, partition)
        return RocksTableStore(db, offset_key)

    def __repr__(self) -> str:
        return f"<table {self.name}>"
