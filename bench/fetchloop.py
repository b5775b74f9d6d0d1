"""`python -m bench.fetchloop`: the per-record cost of Faust's fetch loop against the lean one.

Both loops (`faust.transport.consumer.Consumer._drain_messages` and
`app.faust_patches.fetch.lean_drain_messages`) run on a real Faust consumer object under uvloop
(the worker's loop), fed by a scripted fetch of N records in batches of 500 (no broker: this is
the loop's own cost, not aiokafka's), delivering into an asyncio queue that a consumer task
drains, as the conductor delivers into a stream's buffer. Rounds alternate the two loops; the
figure is CPU-us per record (process time), median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import faust
import uvloop
from faust.transport.consumer import Consumer
from faust.types import TP, Message
from mode import Service

from app.faust_patches import fetch

TP0 = TP("bench-fetchloop", 0)


def _faust_loop() -> Any:
    current = Consumer._drain_messages
    return fetch._faust_drain if getattr(current, "__vigil__", False) else current


async def _one(loop_fn: Any, n: int, batch: int) -> float:
    """CPU-us per record of one loop over `n` records."""
    app = faust.App("bench-fetchloop", broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    fetcher = Service()
    messages = [Message(TP0.topic, 0, i, 0.0, 0, None, b"k", b"v", None, tp=TP0) for i in range(n)]
    batches = [messages[i : i + batch] for i in range(0, n, batch)]
    queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=4096)
    taken = 0

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        if not batches:
            fetcher._stopped.set()
            return
        for m in batches.pop(0):
            yield m.tp, m

    async def callback(message: Message) -> None:  # the conductor's delivery, in short
        if queue.full():
            await queue.put(message)
        else:
            queue.put_nowait(message)

    async def drain_queue() -> None:
        nonlocal taken
        while True:
            await queue.get()
            taken += 1

    consumer.getmany = getmany  # type: ignore[method-assign]
    consumer.callback = callback
    reader = asyncio.create_task(drain_queue())
    try:
        cpu0 = time.process_time()
        await loop_fn(consumer, fetcher)
        while taken < n:
            await asyncio.sleep(0)
        cpu = time.process_time() - cpu0
    finally:
        reader.cancel()
        consumer._thread.thread_loop.close()
    return 1e6 * cpu / n


async def _main(n: int, rounds: int, batch: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"faust": [], "lean": []}
    for r in range(rounds):
        order = [("faust", _faust_loop()), ("lean", fetch.lean_drain_messages)]
        for name, fn in order if r % 2 == 0 else reversed(order):
            out[name].append(await _one(fn, n, batch))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fetchloop", description=__doc__)
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--batch", type=int, default=500, help="records per fetch (500)")
    args = p.parse_args(argv)
    got = uvloop.run(_main(args.records, args.rounds, args.batch))
    med = {k: statistics.median(v) for k, v in got.items()}
    for name, values in got.items():
        runs = " / ".join(f"{v:.1f}" for v in values)
        print(f"{name:5}  {med[name]:6.1f} CPU-us per record (median; rounds {runs})")
    print(f"lean/faust: {med['lean'] / med['faust']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
