"""The checkpoint gate: one checkpoint at a time, and when agents must wait for it."""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import Any


class Gate:
    """One checkpoint at a time; agents wait only while the gate is held closed.

    A checkpoint takes each partition's staged work at its start; events staged while it
    runs read what it took until it is in RocksDB (`PartitionTransaction.settle`), so agents
    go on processing through a checkpoint (until session 5 the gate closed for every
    checkpoint: the agents stood still for its whole produce-and-commit round trip).
    The gate closes when a rebalance forgets the transactions while a checkpoint still runs
    (`hold_until_checkpointed`): their successors would read RocksDB before that checkpoint
    wrote it. Handlers are synchronous, so no event is half processed at either moment.

    `VIGIL_CLOSED_CHECKPOINTS=1` closes the gate for every checkpoint again: a diagnostic
    switch for A/B runs of the benchmark (read at start-up), not a setting.
    """

    SWITCH = "VIGIL_CLOSED_CHECKPOINTS"

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._lock = asyncio.Lock()
        self.running = False
        self.closed_checkpoints = os.environ.get(self.SWITCH, "0") == "1"

    @property
    def closed(self) -> bool:
        return not self._open.is_set()

    async def wait_open(self) -> None:
        await self._open.wait()

    @asynccontextmanager
    async def exclusive(self) -> Any:
        """Run something that must not overlap a checkpoint (sending outputs ahead of it)."""
        async with self._lock:
            yield

    @asynccontextmanager
    async def checkpointing(self) -> Any:
        """Run one checkpoint (after any running one); reopen the gate when it ends."""
        async with self._lock:
            self.running = True
            if self.closed_checkpoints:
                self._open.clear()
            try:
                yield
            finally:
                self.running = False
                self._open.set()

    def hold_until_checkpointed(self) -> None:
        """Agents wait until the running checkpoint (if any) has ended."""
        if self.running:
            self._open.clear()
