"""The outbox: state stored at once, records sent in order to the right producer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.exceptions import OutputError
from app.outbox import Outbox, read


@dataclass
class FakeMetadata:
    topic_partition: tuple[str, int]
    offset: int


class FakeProducer:
    """aiokafka's producer as the outbox uses it: `send` returns a delivery future."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int]] = []
        self.fail = fail

    async def send(
        self, topic: str, value: bytes | None, *, key: bytes | None, partition: int
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value, partition))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail:
            fut.set_exception(RuntimeError("broker gone"))
        else:
            fut.set_result(FakeMetadata((topic, partition), len(self.sent) - 1))
        return fut


class FakeDB(dict[bytes, bytes]):
    def put(self, key: bytes, value: bytes) -> None:
        self[key] = value

    def delete(self, key: bytes) -> None:
        self.pop(key, None)


@dataclass
class FakeStore:
    dbs: dict[int, FakeDB] = field(default_factory=dict)

    def _db_for_partition(self, partition: int) -> FakeDB:
        return self.dbs.setdefault(partition, FakeDB())


@dataclass
class FakeChangelog:
    name: str

    def get_topic_name(self) -> str:
        return self.name


@dataclass
class FakeTable:
    name: str = "cards"
    data: FakeStore = field(default_factory=FakeStore)
    changelog_topic: FakeChangelog = field(default_factory=lambda: FakeChangelog("app-cards-cl"))
    persisted: list[FakeMetadata] = field(default_factory=list)

    def _on_changelog_sent(self, fut: asyncio.Future[Any]) -> None:
        self.persisted.append(fut.result())


class FakeFaustProducer:
    def __init__(self, tids: list[str]) -> None:
        self.plain = FakeProducer()
        self._transaction_producers = {tid: FakeProducer() for tid in tids}
        self._trn_locks = {tid: asyncio.Lock() for tid in tids}

    def _ensure_producer(self) -> FakeProducer:
        return self.plain


@dataclass
class FakeConf:
    id: str = "vigil"


class FakeAssignor:
    def group_for_topic(self, topic: str) -> int:
        return 3


@dataclass
class FakeApp:
    in_transaction: bool
    producer: FakeFaustProducer
    conf: FakeConf = field(default_factory=FakeConf)
    assignor: FakeAssignor = field(default_factory=FakeAssignor)


@pytest.fixture
def make_app() -> Callable[..., FakeApp]:
    def make(in_transaction: bool = False, tids: tuple[str, ...] = ()) -> FakeApp:
        return FakeApp(in_transaction, FakeFaustProducer(list(tids)))

    return make


async def test_put_stores_at_once_and_flush_sends_the_changelog_in_order(make_app):
    app = make_app()
    table = FakeTable()
    box = Outbox(app, "transactions")
    box.put(table, b"card-1", b"s1", 2)
    box.put(table, b"card-2", b"s2", 2)
    box.send("fraud-alerts", b"card-2", b"{}", 2)
    assert read(table, b"card-1", 2) == b"s1"  # visible before any flush
    assert read(table, b"card-1", 0) is None  # partitions are separate stores
    assert app.producer.plain.sent == []
    assert len(box) == 3

    await box.flush()
    assert app.producer.plain.sent == [
        ("app-cards-cl", b"card-1", b"s1", 2),
        ("app-cards-cl", b"card-2", b"s2", 2),
        ("fraud-alerts", b"card-2", b"{}", 2),
    ]
    assert len(box) == 0
    await asyncio.sleep(0)  # delivery callbacks run on the loop
    # Only the partition's last changelog offset is recorded: it is the one that counts.
    assert table.persisted == [FakeMetadata(("app-cards-cl", 2), 1)]


async def test_delete_removes_now_and_sends_a_tombstone(make_app):
    app = make_app()
    table = FakeTable()
    box = Outbox(app, "cart-events")
    box.put(table, b"u1", b"cart", 1)
    box.delete(table, b"u1", 1)
    assert read(table, b"u1", 1) is None
    await box.flush()
    assert app.producer.plain.sent[-1] == ("app-cards-cl", b"u1", None, 1)


async def test_exactly_once_sends_in_the_source_partitions_transaction(make_app):
    app = make_app(in_transaction=True, tids=("vigil-3-0", "vigil-3-1"))
    table = FakeTable()
    box = Outbox(app, "transactions")
    box.put(table, b"c", b"s", 1)
    box.send("fraud-alerts", b"c", b"{}", 1)
    box.send("vigil-dead-letters", None, b"dl", 0, partition=1)
    await box.flush()
    producers = app.producer._transaction_producers
    assert producers["vigil-3-1"].sent == [
        ("app-cards-cl", b"c", b"s", 1),
        ("fraud-alerts", b"c", b"{}", 1),
    ]
    # The dead letter targets partition 1 but belongs to the event read from partition 0.
    assert producers["vigil-3-0"].sent == [("vigil-dead-letters", None, b"dl", 1)]
    assert app.producer.plain.sent == []


async def test_exactly_once_without_the_partitions_producer_is_an_error(make_app):
    app = make_app(in_transaction=True, tids=("vigil-3-0",))
    box = Outbox(app, "transactions")
    box.send("fraud-alerts", b"c", b"{}", 5)
    with pytest.raises(OutputError, match="vigil-3-5") as info:
        await box.flush()
    assert info.value.retriable


async def test_a_failed_send_is_logged_and_not_recorded_as_persisted(make_app, caplog):
    app = make_app()
    app.producer.plain.fail = True
    table = FakeTable()
    box = Outbox(app, "transactions")
    box.put(table, b"c", b"s", 0)
    with caplog.at_level(logging.ERROR, logger="app.outbox"):
        await box.flush()
        await asyncio.sleep(0)
    assert table.persisted == []
    assert "broker gone" in caplog.text


async def test_flush_of_nothing_sends_nothing(make_app):
    app = make_app()
    await Outbox(app, "transactions").flush()
    assert app.producer.plain.sent == []
