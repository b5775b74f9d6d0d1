"""`tables` is also PyTables' import name: make sure the one imported is Vigil's."""

from __future__ import annotations

from pathlib import Path

import tables


def test_tables_is_ours():
    root = Path(__file__).resolve().parents[2]
    assert Path(tables.__file__).resolve().parent == root / "tables"
