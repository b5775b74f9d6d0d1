"""Reads of Faust's private state that the rest of Vigil needs, in one place.

Readiness, lag and table-size gauges, and the bulk restore need a few things Faust keeps
private; each is read here (and checked by `tests/unit/faust_patches/test_compat.py`), never by name
elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PRIVATE_NAMES: tuple[tuple[str, str, str], ...] = (
    ("faust.app.base", "App", "_consumer"),
    ("faust.transport.consumer", "Consumer", "_committed_offset"),
    ("faust.stores.rocksdb", "Store", "_dbs"),
    ("faust.tables.manager", "TableManager", "_changelogs"),
    ("mode.supervisors", "SupervisorStrategy", "_services"),
)


def consumer_started(app: Any) -> bool:
    """Whether the app's consumer exists (reading `app.consumer` would create it)."""
    return app._consumer is not None


def committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """The offsets Faust last committed (or sought to) per partition."""
    return consumer._committed_offset  # type: ignore[no-any-return]


def table_dbs(table: Any) -> Iterable[Any]:
    """The open RocksDB of every partition of a table (none for other stores)."""
    return list(getattr(table.data, "_dbs", {}).values())


def tables_by_changelog(app: Any) -> Mapping[str, Any]:
    """Every table by its changelog topic name."""
    return app.tables._changelogs  # type: ignore[no-any-return]


def supervised_actors(agent: Any) -> list[Any]:
    """The actors (one per `concurrency`) an agent's supervisor runs."""
    supervisor = getattr(agent, "supervisor", None)
    return list(getattr(supervisor, "_services", ())) if supervisor is not None else []
