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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from app.devtools.kafka.errors import KafkaStartError

T = TypeVar("T")


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: Kafka's defaults are wrong for Vigil (1 partition, delete policy)."""

    name: str
    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int = 1


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


async def create_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec | str],
    *,
    timeout: float = 30.0,
) -> list[str]:
    """Create topics (a bare name means 1 partition, broker defaults), ignoring existing ones.

    Why: the broker runs with ``auto.create.topics.enable=false`` so a typo never silently makes
    a topic; Vigil creates its topics explicitly, with the partition count its tables need and
    e.g. ``cleanup.policy=compact`` for changelogs. Returns the names that were newly created,
    after waiting until every partition of every requested topic has a leader, so a producer
    that starts right after does not see ``UnknownTopicOrPartition``.
    """
    topics = [TopicSpec(s) if isinstance(s, str) else s for s in specs]
    if not topics:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    created: list[str] = []
    try:
        await admin.start()
        response = await admin.create_topics(
            [
                NewTopic(
                    name=t.name,
                    num_partitions=t.partitions,
                    replication_factor=t.replication_factor,
                    topic_configs={k: str(v) for k, v in t.config.items()},
                )
                for t in topics
            ],
            timeout_ms=int(timeout * 1000),
        )
        errors: list[str] = []
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            message = entry[2] if len(entry) > 2 else None
            if code == 0:
                created.append(name)
            elif for_code(code) is not TopicAlreadyExistsError:
                errors.append(f"{name}: {for_code(code).__name__} {message or ''}".strip())
        if errors:
            raise RuntimeError("could not create Kafka topics: " + "; ".join(errors))
        await _wait_for_leaders(admin, [t.name for t in topics], timeout)
    finally:
        await admin.close()
    return created


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float) -> None:
    """Creation is acknowledged before metadata shows leaders; wait for them, briefly."""
    deadline = time.monotonic() + timeout
    while True:
        described: list[dict[str, Any]] = await admin.describe_topics(names)
        ready = {
            t["topic"]
            for t in described
            if t["error_code"] == 0
            and t["partitions"]
            and all(p["leader"] >= 0 for p in t["partitions"])
        }
        if ready >= set(names):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout} s: {set(names) - ready}")
        await asyncio.sleep(0.1)
