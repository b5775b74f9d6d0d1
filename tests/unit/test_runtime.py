"""`app.runtime.partitions.PartitionTransactions`: a refused checkpoint halts its partitions (nothing is
committed past it) until a rebalance, which the worker asks for itself, and a halt no rebalance
ends makes the worker exit."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from app import faust_patches
from app.runtime import partitions as runtime
from app.runtime.partitions import PartitionTransactions, transactional_id


class RefusingProducer:
    async def begin_transaction(self) -> None: ...

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("ProducerFenced")

    async def abort_transaction(self) -> None: ...


def _runtime(halt_timeout_s: float = 60.0) -> PartitionTransactions:
    agent = SimpleNamespace(name="vigil-x", channel=SimpleNamespace(topics=("input",)))
    app = SimpleNamespace(conf=SimpleNamespace(id="app"), agents={"x": agent}, rebalancing=False)
    txns = PartitionTransactions(
        app, exactly_once=True, client_kwargs={}, halt_timeout_s=halt_timeout_s
    )
    txns._producers[transactional_id("app", "vigil-x", 1)] = RefusingProducer()
    return txns


async def test_refused_checkpoint_halts_the_partition_until_a_rebalance():
    txns = _runtime()
    txn = txns.for_source("input", 1)
    txn.begin_event()
    txn.send("out", b"k", b"v", 1)
    txn.end_event(("input", 1), 41)
    assert await txns.checkpoint() == {}
    assert txn.halted and not txns.healthy
    assert txns.for_source("input", 1) is txn  # its events are skipped from now on
    txns.drop_all()  # the rebalance: Faust seeks the partition back to its committed offset
    assert txns.healthy
    assert not txns.for_source("input", 1).halted


async def test_a_halt_asks_for_rebalances_then_exits_the_worker_if_none_comes(monkeypatch):
    exits: list[int] = []
    rejoins: list[Any] = []
    monkeypatch.setattr(runtime.os, "_exit", lambda code: exits.append(code))

    async def rejoin(consumer: Any) -> None:
        rejoins.append(consumer)

    monkeypatch.setattr(faust_patches, "request_rejoin", rejoin)
    coordinator = {"known": True}
    monkeypatch.setattr(faust_patches, "group_coordinator_known", lambda c: coordinator["known"])
    txns = _runtime(halt_timeout_s=0.0)
    txns.app.consumer = "the consumer"
    txn = txns.for_source("input", 1)
    txn.end_event(("input", 1), 1)
    await txns.checkpoint()
    assert exits == [] and rejoins == ["the consumer"]  # asked at once (a broker outage)
    coordinator["known"] = False  # no broker answers: waiting, however long, is not counted
    for _ in range(runtime.MAX_REJOINS + 2):
        await txns.checkpoint()
    assert exits == [] and len(rejoins) == 1
    coordinator["known"] = True
    for _ in range(runtime.MAX_REJOINS):
        await txns.checkpoint()  # each later checkpoint finds the halt older than the timeout
    assert exits == [] and len(rejoins) == 1 + runtime.MAX_REJOINS
    await txns.checkpoint()
    assert exits == [runtime.EXIT_CHECKPOINT_FAILED]


async def test_a_failed_rebalance_request_is_not_an_error(monkeypatch):
    async def rejoin(consumer: Any) -> None:
        raise RuntimeError("no coordinator")

    monkeypatch.setattr(faust_patches, "request_rejoin", rejoin)
    txns = _runtime()
    txns.app.consumer = None
    txns.for_source("input", 1).end_event(("input", 1), 1)
    assert await txns.checkpoint() == {}
    assert not txns.healthy


@pytest.mark.parametrize("rebalancing", [True])
async def test_no_exit_while_a_rebalance_is_under_way(monkeypatch, rebalancing):
    exits: list[int] = []
    monkeypatch.setattr(runtime.os, "_exit", lambda code: exits.append(code))
    monkeypatch.setattr(faust_patches, "group_coordinator_known", lambda c: True)
    txns = _runtime(halt_timeout_s=0.0)
    txns.for_source("input", 1).end_event(("input", 1), 1)
    await txns.checkpoint()
    txns.app.rebalancing = rebalancing
    await txns.checkpoint()
    assert exits == []


def test_one_transactional_id_per_stream_and_partition():
    """Partition 1 of two agents' topics: two ids (Faust's format would give both one)."""
    agents = {
        "fraud": SimpleNamespace(name="vigil-fraud", channel=SimpleNamespace(topics=("txns",))),
        "carts": SimpleNamespace(
            name="vigil-carts", channel=SimpleNamespace(topics=("cart-events", "app-cart-ticks"))
        ),
    }
    app = SimpleNamespace(conf=SimpleNamespace(id="app"), agents=agents, rebalancing=False)
    txns = PartitionTransactions(app, exactly_once=True, client_kwargs={})
    assert txns.transactional_id_for("txns", 1) == "app-vigil-fraud-1"
    assert txns.transactional_id_for("cart-events", 1) == "app-vigil-carts-1"
    assert txns.for_source("cart-events", 1) is txns.for_source("app-cart-ticks", 1)
    assert txns.for_source("txns", 1) is not txns.for_source("cart-events", 1)


class StartedProducer:
    def __init__(self, tid: str) -> None:
        self.tid = tid
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


async def test_producers_are_kept_across_consecutive_generations_only(monkeypatch):
    txns = _runtime()
    txns._producers.clear()
    started: list[str] = []

    async def start(tid: str) -> StartedProducer:
        started.append(tid)
        return StartedProducer(tid)

    monkeypatch.setattr(txns, "_start_transactional", start)
    await txns.assign({"a", "b"}, generation=5)
    assert sorted(started) == ["a", "b"]
    await txns.assign({"a", "c"}, generation=6)  # consecutive: keep a, start c, stop b
    assert sorted(started) == ["a", "b", "c"]
    assert set(txns._producers) == {"a", "c"}
    kept = txns._producers["a"]
    await txns.assign({"a", "c"}, generation=8)  # missed generation 7: a zombie meanwhile
    assert sorted(started) == ["a", "a", "b", "c", "c"]
    assert kept.stopped and txns._producers["a"] is not kept


async def test_stream_partitions_assigned_without_their_table_partitions_are_halted(monkeypatch):
    """The leader left a changelog out of the assignment (it did not know the topic yet): the
    worker must not judge those partitions on empty state; it halts them and asks to rejoin."""
    from faust.types import TP

    rejoins: list[Any] = []

    async def rejoin(consumer: Any) -> None:
        rejoins.append(consumer)

    monkeypatch.setattr(faust_patches, "request_rejoin", rejoin)
    txns = _runtime()
    txns.app.consumer = "the consumer"
    changelogs = ("app-cards-changelog", "app-carts-changelog")
    txns.app.tables = SimpleNamespace(changelog_topics=set(changelogs))
    actives = {TP("input", 0), TP("input", 1), *(TP(c, 0) for c in changelogs)}
    actives.add(TP("app-carts-changelog", 1))  # partition 1 lacks its cards partition
    txns.app.assignor = SimpleNamespace(assigned_actives=lambda: actives)
    assert await txns.halt_unserved() == [("input", 1)]
    assert txns.for_source("input", 1).halted and not txns.for_source("input", 0).halted
    assert not txns.healthy and rejoins == ["the consumer"]

    actives.add(TP("app-cards-changelog", 1))  # the next assignment is whole
    txns.drop_all()
    rejoins.clear()
    assert await txns.halt_unserved() == []
    assert txns.healthy and rejoins == []
