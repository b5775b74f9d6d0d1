"""The store dir: Vigil creates `vigil/` with a marker, never deletes anything, and refuses a
`vigil/` holding another app id's state or one it did not create."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.exceptions import ConfigError
from app.runtime.faust_app import create_app
from app.runtime.store import MARKER, marker_content, prepare_store, vigil_dir
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a directory)."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def put_foreign_files(store: Path) -> None:
    (store / "photos").mkdir(parents=True)
    (store / "notes.txt").write_bytes(b"my notes\n")
    (store / "photos" / "a.jpg").write_bytes(bytes(range(256)))


def test_a_fresh_dir_gets_vigil_subdir_with_its_marker(tmp_path: Path) -> None:
    store = tmp_path / "does" / "not" / "exist"
    own = prepare_store(store, "vigil-a")
    assert own == vigil_dir(store) == store / "vigil"
    assert json.loads((own / MARKER).read_text()) == {
        "app_id": "vigil-a",
        "created_by": "vigil",
        "layout": 1,
    }
    assert snapshot(store).keys() == {"vigil", f"vigil/{MARKER}"}  # nothing else, no litter
    assert prepare_store(store, "vigil-a") == own  # a restart accepts its own store


def test_foreign_files_survive_every_start(tmp_path: Path) -> None:
    store = tmp_path / "store"
    put_foreign_files(store)
    (store / "v1" / "tables").mkdir(parents=True)  # even what looks like an old layout's
    (store / "v1" / "tables" / "cards-0.db").write_bytes(b"old")
    (store / ".vigil-clean-shutdown").touch()
    before = snapshot(store)

    own = prepare_store(store, "vigil-a")
    (own / "v1" / "tables").mkdir(parents=True)  # what Faust then writes
    (own / "v1" / "tables" / "cards-0.db").write_bytes(b"state")
    mine = snapshot(own)
    for _ in range(3):  # restarts, after a clean stop or a crash alike: no wipe
        prepare_store(store, "vigil-a")

    after = snapshot(store)
    assert {k: v for k, v in after.items() if not k.startswith("vigil")} == before
    assert snapshot(own) == mine


def test_another_app_ids_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    store = tmp_path / "store"
    own = prepare_store(store, "vigil-a")
    (own / "v1").mkdir()
    before = snapshot(store)
    with pytest.raises(ConfigError) as err:
        prepare_store(store, "vigil-b")
    assert err.value.setting == "VIGIL_STORE_DIR"
    assert "holds the state of app id 'vigil-a', not 'vigil-b'" in str(err.value)
    assert snapshot(store) == before


@pytest.mark.parametrize(
    "marker",
    [
        None,  # a vigil/ Vigil did not create
        b"not json",
        json.dumps({"app_id": "vigil-a", "created_by": "someone", "layout": 1}).encode(),
        json.dumps({"app_id": "vigil-a", "created_by": "vigil", "layout": 99}).encode(),
    ],
    ids=["no-marker", "garbage", "not-by-vigil", "unknown-layout"],
)
def test_a_vigil_dir_it_cannot_vouch_for_is_refused_not_adopted(
    tmp_path: Path, marker: bytes | None
) -> None:
    store = tmp_path / "store"
    (store / "vigil").mkdir(parents=True)
    (store / "vigil" / "someone-elses.db").write_bytes(b"data")
    if marker is not None:
        (store / "vigil" / MARKER).write_bytes(marker)
    before = snapshot(store)
    with pytest.raises(ConfigError) as err:
        prepare_store(store, "vigil-a")
    assert err.value.setting == "VIGIL_STORE_DIR"
    assert snapshot(store) == before


def test_a_file_where_a_dir_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):
        prepare_store(tmp_path / "file", "vigil-a")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "vigil").write_text("not a dir")
    with pytest.raises(ConfigError):
        prepare_store(tmp_path / "store", "vigil-a")
    assert (tmp_path / "store" / "vigil").read_text() == "not a dir"


def test_faust_datadir_is_the_vigil_subdir(tmp_path: Path) -> None:
    store = tmp_path / "odd {name}"  # Faust formats datadir: braces must survive
    app = create_app(Settings(store_dir=store, app_id="vigil-a"))
    assert app.conf.datadir == store / "vigil"
    assert str(app.conf.tabledir).startswith(str(store / "vigil"))


def test_marker_content_is_what_prepare_writes(tmp_path: Path) -> None:
    own = prepare_store(tmp_path, "x")
    assert json.loads((own / MARKER).read_text()) == marker_content("x")


def test_worker_refuses_another_app_ids_store_before_connecting(tmp_path: Path) -> None:
    store = tmp_path / "store"
    prepare_store(store, "vigil-a")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_APP_ID="vigil-b",
        VIGIL_STORE_DIR=str(store),
        VIGIL_BROKER="kafka://127.0.0.1:9",  # nothing listens: the check must come first
    )
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2, proc.stderr.decode()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vigil: bad setting VIGIL_STORE_DIR: ")
    assert "holds the state of app id 'vigil-a', not 'vigil-b'" in lines[0]
    assert proc.stdout == b""
