"""Vigil's state: RocksDB-backed Faust tables (changelogged) and the replicated fraud labels.

Discovered by the worker (`app.runtime.faust_app.DISCOVER`); `app/` never imports this package. The
name is also PyTables' import name: `tests/unit/test_tables_import.py` checks ours wins.
"""
