"""A worker's store dir is the operator's: Vigil keeps its state in `vigil/` and deletes nothing,
not after a clean start, not after a SIGKILL and a restart on the same dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.runtime.store import MARKER

pytestmark = pytest.mark.integration

NOTES = b"operator's notes: do not delete\n"
PHOTO = bytes(range(256)) * 64


def test_foreign_files_in_the_store_dir_survive_a_kill_and_a_restart(deployment) -> None:
    worker = deployment.worker("w1")
    store = Path(worker.env["VIGIL_STORE_DIR"])
    (store / "photos").mkdir(parents=True)
    (store / "notes.txt").write_bytes(NOTES)
    (store / "photos" / "a.jpg").write_bytes(PHOTO)

    worker.start().wait_ready()
    worker.kill()  # SIGKILL: no shutdown
    worker.start().wait_ready()  # same store dir
    assert worker.stop() == 0, worker.tail()

    assert (store / "notes.txt").read_bytes() == NOTES
    assert (store / "photos" / "a.jpg").read_bytes() == PHOTO
    marker = json.loads((store / "vigil" / MARKER).read_text())
    assert marker == {"app_id": worker.env["VIGIL_APP_ID"], "created_by": "vigil", "layout": 1}
    # Faust's stores went into vigil/, nothing of Vigil's beside the operator's files.
    assert sorted(p.name for p in store.iterdir()) == ["notes.txt", "photos", "vigil"]
    assert any((store / "vigil").rglob("*.db")), sorted(map(str, store.rglob("*")))
