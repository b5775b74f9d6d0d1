"""Input partitions stay paused from Faust's seek until its flow resumes (app.faust_patches)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP

from app.faust_patches import commit

INPUT_0 = TP("transactions", 0)
INPUT_1 = TP("transactions", 1)
CHANGELOG = TP("app-cards-changelog", 0)


class FakeApp:
    in_transaction = False
    in_recovery = False


class FakeConsumer:
    """The parts of Faust's consumer that perform_seek and resume_flow touch."""

    def __init__(self) -> None:
        self.app = FakeApp()
        self.active = {INPUT_0, INPUT_1, CHANGELOG}
        self.assigned = {INPUT_0, INPUT_1, CHANGELOG}
        self._read_offset: dict[TP, Any] = defaultdict(lambda: None)
        self._committed_offset: dict[TP, Any] = defaultdict(lambda: None)
        self.flow_active = False
        self.can_resume_flow = asyncio.Event()
        self.suspend_flow = asyncio.Event()
        self.suspend_flow.set()
        self.active_during_seek: set[TP] | None = None

    def _get_active_partitions(self) -> set[TP]:
        return self.active

    def _is_changelog_tp(self, tp: TP) -> bool:
        return tp.topic.endswith("-changelog")

    def pause_partitions(self, tps: Any) -> None:
        self.active -= set(tps)

    def resume_partitions(self, tps: Any) -> None:
        self.active |= set(tps)

    def assignment(self) -> set[TP]:
        return self.assigned

    async def seek_to_committed(self) -> dict[TP, int]:
        self.active_during_seek = set(self.active)
        return {INPUT_0: 10, INPUT_1: 20}


async def test_inputs_stay_paused_from_the_seek_until_the_flow_resumes():
    commit.install(None)
    consumer = FakeConsumer()
    # Faust's recovery has just resumed the stream partitions, and now seeks them.
    await Consumer.perform_seek(consumer)  # type: ignore[arg-type]
    assert consumer.active_during_seek == {CHANGELOG}
    assert consumer.active == {CHANGELOG}  # still held: the flow is suspended
    assert consumer._read_offset[INPUT_0] == 10

    consumer.assigned = {INPUT_0, CHANGELOG}  # INPUT_1 was revoked meanwhile
    Consumer.resume_flow(consumer)  # type: ignore[arg-type]
    assert not consumer.suspend_flow.is_set()
    assert consumer.active == {INPUT_0, CHANGELOG}  # only what is still assigned

    Consumer.resume_flow(consumer)  # type: ignore[arg-type]  # a second resume changes nothing
    assert consumer.active == {INPUT_0, CHANGELOG}


async def test_a_second_seek_before_the_flow_resumes_keeps_the_first_hold():
    # Faust calls perform_seek from getmany too while the flow is inactive: the second seek
    # finds the inputs already paused; the hold must not forget them (they would be stranded).
    commit.install(None)
    consumer = FakeConsumer()
    await Consumer.perform_seek(consumer)  # type: ignore[arg-type]
    await Consumer.perform_seek(consumer)  # type: ignore[arg-type]
    assert consumer.active == {CHANGELOG}
    Consumer.resume_flow(consumer)  # type: ignore[arg-type]
    assert consumer.active == {INPUT_0, INPUT_1, CHANGELOG}


async def test_the_flow_resumed_during_a_table_recovery_keeps_the_inputs_held():
    """Faust resumes the flow while it reads the changelogs; held inputs wait for the seek
    that ends the recovery (processed and checkpointed before it, they could be committed past
    records Faust dropped: a transaction lost in make chaos)."""
    commit.install(None)
    consumer = FakeConsumer()
    await Consumer.perform_seek(consumer)  # type: ignore[arg-type]
    consumer.app.in_recovery = True
    Consumer.resume_flow(consumer)  # type: ignore[arg-type]  # "Restoring state from changelogs"
    assert consumer.active == {CHANGELOG}
    consumer.app.in_recovery = False
    await Consumer.perform_seek(consumer)  # type: ignore[arg-type]  # the recovery's last seek
    Consumer.resume_flow(consumer)  # type: ignore[arg-type]
    assert consumer.active == {INPUT_0, INPUT_1, CHANGELOG}
