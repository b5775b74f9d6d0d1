"""Talking to a broker (ours or any other): wait until it serves, and create topics properly.

Plain aiokafka, no Faust, so the test fixture and the benchmark can use it without loading the
stream-processing app.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aiokafka.admin import AIOKafkaAdminClient

from app.devtools.kafka.errors import KafkaStartError

T = TypeVar("T")


def _tcp_open(host: str, port: int) -> bool:
    """Cheap first readiness check, so aiokafka is not asked (and does not log) too early."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _split_bootstrap(bootstrap: str) -> tuple[str, int]:
    """``host:port`` (optionally ``kafka://``-prefixed, first of a comma list) → (host, port)."""
    first = bootstrap.removeprefix("kafka://").split(",", 1)[0].strip()
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


def _run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, even when called inside a running event loop.

    ``start()`` is sync (CLI, session fixtures) but its readiness probe uses aiokafka; inside an
    already running loop ``asyncio.run`` is refused, so the probe then runs in its own thread.
    """

    async def _main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_main())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _main()).result()


async def _cluster_ready(bootstrap: str, timeout: float) -> bool:
    """One metadata round trip: the broker is ready when it lists itself as a live node."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout * 1000))
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
        return bool(cluster.get("brokers"))
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def wait_for_broker(
    bootstrap: str,
    timeout: float = 60.0,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Block until a broker answers a metadata request; used for ours and for external ones.

    ``alive`` lets the caller stop waiting as soon as its process has died (no point in waiting
    60 s for a JVM that exited after one).
    """
    host, port = _split_bootstrap(bootstrap)
    deadline = time.monotonic() + timeout
    last_error = "the port never opened"
    while True:
        if alive is not None and not alive():
            raise KafkaStartError(f"the broker process exited before answering at {bootstrap}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"no Kafka broker answered at {bootstrap} in {timeout:.0f} s ({last_error})"
            )
        if _tcp_open(host, port):
            probe_timeout = min(5.0, max(remaining, 0.5))
            try:
                if _run_sync(functools.partial(_cluster_ready, bootstrap, probe_timeout)):
                    return
                last_error = "metadata listed no broker yet"
            except Exception as exc:
                last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
