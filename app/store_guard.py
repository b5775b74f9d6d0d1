"""Keep the local RocksDB stores only when the last worker stopped cleanly.

Faust writes table changes to the local RocksDB at once, before the Kafka transaction that
carries them commits. A worker killed mid-transaction leaves changes in its local store whose
transaction was aborted; the changelog (read_committed) never undoes them, so a restart on that
store would count some events twice. After an unclean stop Vigil therefore discards the local
stores and rebuilds them from the changelogs, which hold committed changes only. A clean stop
leaves a marker and the next start keeps the stores (fast restart).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = ".vigil-clean-shutdown"


def prepare_store(store_dir: Path) -> bool:
    """Call before the worker starts; returns True when the stores were discarded."""
    store_dir.mkdir(parents=True, exist_ok=True)
    marker = store_dir / MARKER
    keep = (MARKER, ASSIGNMENT_FILE)
    contents = [p for p in store_dir.iterdir() if p.name not in keep]
    discarded = False
    if contents and not marker.exists():
        log.warning("unclean shutdown detected: rebuilding local tables from their changelogs")
        for path in contents:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        discarded = True
    marker.unlink(missing_ok=True)
    return discarded


def mark_clean(store_dir: Path) -> None:
    """Call after the worker stopped cleanly (all commits done, stores closed)."""
    store_dir.mkdir(parents=True, exist_ok=True)
    (store_dir / MARKER).touch()


ASSIGNMENT_FILE = ".vigil-transactional-ids.json"


def remember_transactional_ids(store_dir: Path, ids: list[str]) -> None:
    """Record the transactional ids this worker's partitions use (after each rebalance)."""
    import json

    store_dir.mkdir(parents=True, exist_ok=True)
    tmp = store_dir / (ASSIGNMENT_FILE + ".tmp")
    tmp.write_text(json.dumps(sorted(ids)))
    tmp.replace(store_dir / ASSIGNMENT_FILE)


def remembered_transactional_ids(store_dir: Path) -> list[str]:
    """The transactional ids the previous run of this worker held, if it recorded any."""
    import json

    try:
        ids = json.loads((store_dir / ASSIGNMENT_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [i for i in ids if isinstance(i, str)]


def last_write(store_dir: Path) -> float:
    """When the previous worker last wrote its stores (RocksDB writes its WAL continuously)."""
    newest = 0.0
    if store_dir.exists():
        for path in store_dir.rglob("*"):
            try:
                newest = max(newest, path.stat().st_mtime)
            except OSError:
                continue
    return newest
