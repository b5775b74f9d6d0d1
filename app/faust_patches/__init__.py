"""Everything Vigil does to Faust's and aiokafka's internals: one seam, one `install()`.

- `commit`: Vigil's checkpoint instead of Faust's commit, Vigil's transactional producers per
  partition instead of Faust's transaction manager, the seek hold, highwaters from the broker;
- `recovery`: bulk table restore before Faust's per-record recovery, short idle waits;
- `stores`: Faust's recovery never writes a changelog record the store already reflects;
- `fetch`: Faust's fetch loop without two tasks per record (`VIGIL_LEAN_FETCH=0` turns it off);
- `access`: the few reads of Faust's private state the rest of Vigil needs (readiness, lag,
  table sizes), so that no module outside this package names a private Faust attribute.

Each patch names the upstream issue it works around. `PRIVATE_NAMES` lists every private name
used here; `tests/unit/faust_patches/test_compat.py` checks them against the installed Faust and
aiokafka, so an upgrade that renames one fails that test, naming it.
"""

from __future__ import annotations

from typing import Any

from app.faust_patches import access, commit, fetch, recovery, stores
from app.faust_patches.commit import (
    commit_consumer_offsets,
    group_coordinator_known,
    partition_store,
    request_rejoin,
)

__all__ = [
    "PATCHED",
    "PRIVATE_NAMES",
    "commit_consumer_offsets",
    "group_coordinator_known",
    "install",
    "partition_store",
    "request_rejoin",
]

PRIVATE_NAMES: tuple[tuple[str, str, str], ...] = (
    commit.PRIVATE_NAMES
    + recovery.PRIVATE_NAMES
    + stores.PRIVATE_NAMES
    + access.PRIVATE_NAMES
    + fetch.PRIVATE_NAMES
)
PATCHED: tuple[tuple[str, str, str], ...] = (
    commit.PATCHED + recovery.PATCHED + stores.PATCHED + fetch.PATCHED
)


def install(runtime: Any, client_kwargs: dict[str, Any]) -> None:
    """Install every patch (idempotent; class-level, so call before the worker starts)."""
    commit.install(runtime)
    recovery.install(client_kwargs)
    stores.install()
    fetch.install()
