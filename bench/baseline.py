"""The baseline: a raw aiokafka consume -> orjson decode -> produce loop, in one process.

Run as `python -m bench.baseline` by the benchmark (its own process, like a worker). It is the
upper bound of what Python + aiokafka do with the same records on the same broker: per record
one JSON decode, one JSON encode and one produce (Vigil writes at least one record per event
too: the table's changelog), offsets committed every `--commit-interval` seconds after the
produced records are acknowledged (at-least-once), as a consumer group with the same session
timeout as the benchmarked workers. No state, no rules.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def run(args: argparse.Namespace) -> None:
    consumer = AIOKafkaConsumer(
        args.input,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,
        rebalance_timeout_ms=10_000,
        heartbeat_interval_ms=2_000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    await consumer.start()
    done = 0
    first = last = 0.0
    try:
        pending: list[asyncio.Future[object]] = []
        next_commit = time.monotonic() + args.commit_interval
        while done < args.expect:
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    value = orjson.loads(record.value)
                    fut = await producer.send(
                        args.output, orjson.dumps(value), key=record.key, partition=tp.partition
                    )
                    pending.append(fut)
                done += len(records)
            if batches and not first:
                first = time.monotonic()
            now = time.monotonic()
            if now >= next_commit or done >= args.expect:
                await asyncio.gather(*pending)
                pending.clear()
                await consumer.commit()
                next_commit = now + args.commit_interval
        last = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
    rate = done / (last - first) if last > first else 0.0
    print(f"baseline: {done} records, first to last batch {last - first:.2f} s, {rate:.0f}/s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.baseline")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--expect", type=int, required=True, help="stop after this many records")
    p.add_argument("--commit-interval", type=float, default=0.5)
    asyncio.run(run(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
