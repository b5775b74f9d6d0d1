"""The store directory: Vigil owns one subdirectory of `VIGIL_STORE_DIR`, and deletes nothing.

`VIGIL_STORE_DIR` is the operator's folder (a volume, a home directory...): other files may
live there and Vigil leaves them alone. Vigil's own files (Faust's datadir: the RocksDB table
partitions) live in the subdirectory `vigil/`, which Vigil creates with a marker file
`VIGIL-STORE.json` naming the app id whose state it holds:

    <VIGIL_STORE_DIR>/
        vigil/
            VIGIL-STORE.json     {"app_id": "...", "created_by": "vigil", "layout": 1}
            v1/tables/...        Faust's RocksDB stores
        (anything else: not Vigil's, never touched)

A start refuses (a `ConfigError`: one line, exit code 2) rather than adopt or overwrite state it
cannot vouch for: a `vigil/` holding another app id's state, a `vigil/` without a readable
marker (not created by Vigil), or a layout this version does not know. Nothing is ever
deleted: keeping the local stores consistent with committed Kafka state after a crash is the
commit protocol's job (`app/exactly_once.py`), not a wipe's.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from app.exceptions import ConfigError

log = logging.getLogger(__name__)

SETTING = "VIGIL_STORE_DIR"
SUBDIR = "vigil"
MARKER = "VIGIL-STORE.json"
LAYOUT = 1
#: Files the store guard of earlier versions left directly in the store dir (no longer used).
_OLD_FILES = (".vigil-clean-shutdown", ".vigil-transactional-ids.json")


def vigil_dir(store_dir: Path) -> Path:
    """The directory Vigil owns inside `store_dir` (Faust's datadir)."""
    return store_dir / SUBDIR


def marker_content(app_id: str) -> dict[str, Any]:
    """What the marker file of a store holding `app_id`'s state says."""
    return {"app_id": app_id, "created_by": "vigil", "layout": LAYOUT}


def prepare_store(store_dir: Path, app_id: str) -> Path:
    """Create or check Vigil's directory in `store_dir` for `app_id`; return it.

    Call before the worker connects to anything. Raises `ConfigError` when the directory
    holds state Vigil must not use; creates nothing but `store_dir` (with its parents) and
    `store_dir/vigil/` with its marker; deletes nothing.
    """
    if store_dir.exists() and not store_dir.is_dir():
        raise ConfigError(SETTING, f"{store_dir} is not a directory")
    own = vigil_dir(store_dir)
    if not own.exists() and not own.is_symlink():
        try:
            store_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(SETTING, f"cannot create {store_dir}: {exc.strerror}") from exc
        if _create(own, app_id):
            log.info("created the store %s for app id %r", own, app_id)
    _check(own, app_id)
    old = [name for name in _OLD_FILES if (store_dir / name).exists()]
    if old:
        log.warning(
            "%s holds files of an older Vigil store layout (%s, and its tables under v1/ if "
            "any) that this version no longer uses; Vigil never deletes them: remove them "
            "yourself once no older worker uses this directory",
            store_dir,
            ", ".join(old),
        )
    return own


def _create(own: Path, app_id: str) -> bool:
    """Create `own` with its marker in one step (rename), so it never exists unmarked.

    Returns False when another process created it first (then it is checked like any other).
    """
    staging = own.parent / f".{own.name}-creating-{os.getpid()}"
    try:
        staging.mkdir()
        (staging / MARKER).write_text(json.dumps(marker_content(app_id)) + "\n")
    except OSError as exc:
        raise ConfigError(SETTING, f"cannot create {own}: {exc.strerror}") from exc
    try:
        staging.rename(own)
    except OSError:
        if not own.exists():
            raise ConfigError(SETTING, f"cannot create {own}") from None
        # Lost a race to another process: remove only what this call made a moment ago.
        (staging / MARKER).unlink()
        staging.rmdir()
        return False
    return True


def _check(own: Path, app_id: str) -> None:
    if not own.is_dir():
        raise ConfigError(
            SETTING, f"{own} is not a directory Vigil created; move it away or pick another dir"
        )
    marker = own / MARKER
    try:
        content = json.loads(marker.read_text())
    except FileNotFoundError:
        raise ConfigError(
            SETTING,
            f"{own} exists but Vigil did not create it (no {MARKER}); Vigil will not adopt "
            "it: move it away or pick another store dir",
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(SETTING, f"{marker} is unreadable ({exc}); not starting") from exc
    if not isinstance(content, dict) or content.get("created_by") != "vigil":
        raise ConfigError(
            SETTING, f"{marker} was not written by Vigil; move {own} away or pick another dir"
        )
    if content.get("layout") != LAYOUT:
        raise ConfigError(
            SETTING,
            f"{own} has store layout {content.get('layout')!r}, this Vigil knows layout "
            f"{LAYOUT} only; not starting",
        )
    theirs = content.get("app_id")
    if theirs != app_id:
        raise ConfigError(
            SETTING,
            f"{own} holds the state of app id {theirs!r}, not {app_id!r} (VIGIL_APP_ID); "
            "give each app id its own store dir",
        )
