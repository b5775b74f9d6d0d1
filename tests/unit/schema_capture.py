"""A pytest plugin that records every value the decoding tests give the decoder, and its verdict.

Loaded by tests/unit/test_schemas.py into a child pytest run of the decoding tests
(`-p tests.unit.schema_capture`), so the schema test sees exactly the records those tests use,
today's and any added later, instead of a copy of them that could fall behind. It wraps the
three public decoders before anything imports them (`app.contract.intake` binds them at import,
and so do the tests), and appends one JSON line per call to the file named by
`VIGIL_SCHEMA_CAPTURE`: the topic, the raw value (base64), whether it decoded, the reason if
not, and the test that made the call.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Callable
from typing import Any

import orjson

if "app.contract.intake" in sys.modules:  # pragma: no cover - a wrong load order
    raise RuntimeError("schema_capture must load before app.contract.intake (use pytest -p)")

from app.contract import decode as _decode
from app.exceptions import DecodeError

_OUT = os.environ.get("VIGIL_SCHEMA_CAPTURE")
_current = {"test": "(collection)"}


def _wrap(topic: str, decoder: Callable[[bytes | str], Any]) -> Callable[[bytes | str], Any]:
    def recorded(raw: bytes | str) -> Any:
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        line: dict[str, Any] = {
            "topic": topic,
            "raw": base64.b64encode(data).decode(),
            "test": _current["test"],
        }
        try:
            event = decoder(raw)
        except DecodeError as exc:
            line.update(ok=False, error=exc.message, kind=exc.kind)
            _write(line)
            raise
        line.update(ok=True)
        _write(line)
        return event

    recorded.__doc__ = decoder.__doc__
    return recorded


def _write(line: dict[str, Any]) -> None:
    if _OUT:
        with open(_OUT, "ab") as out:
            out.write(orjson.dumps(line) + b"\n")


for _name, _topic in (
    ("decode_transaction", "transactions"),
    ("decode_feedback", "fraud-feedback"),
    ("decode_cart_event", "cart-events"),
):
    setattr(_decode, _name, _wrap(_topic, getattr(_decode, _name)))


def pytest_runtest_setup(item: Any) -> None:
    """Name the test that makes the following decoder calls."""
    _current["test"] = item.nodeid
