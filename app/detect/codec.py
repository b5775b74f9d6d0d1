"""Versioned, compact byte layouts for the detector's table values.

Every stored value is an orjson array whose first element is a layout version. Arrays rather
than objects keep field names out of every changelog record (these values are written once per
event), and the version lets a later release read what an earlier one wrote, or refuse it with a
readable error instead of misreading it.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.exceptions import VigilError


class StateFormatError(VigilError):
    """A stored detector value cannot be read: corrupt bytes or an unknown layout version."""


def pack(version: int, *fields: Any) -> bytes:
    """Serialise `fields` behind a leading layout version."""
    return orjson.dumps((version, *fields))


def unpack(
    raw: bytes | bytearray | memoryview | str, kind: str, version: int, size: int
) -> list[Any]:
    """Parse a value written by `pack` and return its fields (without the version).

    `size` is the number of fields the given `version` has; anything else is refused.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StateFormatError(f"{kind}: stored value is not valid JSON ({exc.msg})") from None
    if not isinstance(obj, list) or not obj:
        raise StateFormatError(f"{kind}: stored value is not a versioned array")
    if obj[0] != version:
        raise StateFormatError(
            f"{kind}: stored layout version {obj[0]!r} is not supported (expected {version})"
        )
    if len(obj) != size + 1:
        raise StateFormatError(
            f"{kind}: stored value has {len(obj) - 1} fields, layout {version} has {size}"
        )
    del obj[0]
    return obj


def unpack_versions(
    raw: bytes | bytearray | memoryview | str, kind: str, sizes: dict[int, int]
) -> list[Any]:
    """Like `unpack`, for a value that may be in any layout of `sizes` (version -> field count).

    Lets a newer release read what an older one wrote: the caller fills what is missing.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StateFormatError(f"{kind}: stored value is not valid JSON ({exc.msg})") from None
    if not isinstance(obj, list) or not obj:
        raise StateFormatError(f"{kind}: stored value is not a versioned array")
    version = obj[0]
    if isinstance(version, bool) or version not in sizes:
        known = ", ".join(str(v) for v in sizes)
        raise StateFormatError(
            f"{kind}: stored layout version {version!r} is not supported (expected {known})"
        )
    size = sizes[version]
    if len(obj) != size + 1:
        raise StateFormatError(
            f"{kind}: stored value has {len(obj) - 1} fields, layout {version} has {size}"
        )
    del obj[0]
    return obj
