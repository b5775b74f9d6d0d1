"""JSON text to Python values within the contract's limits, and values back to short quotes.

The contract's values are UTF-8 JSON objects of at most 1 MiB, nested at most 64 levels deep,
and unknown extra fields are ignored *whatever valid JSON they hold*. orjson (the fast path)
refuses some valid JSON: numbers too large for a double (`1e999`, a 400-digit integer), lone
surrogate escapes (`"\\ud800"`) and nesting past 1024 levels. Such text is parsed again by the
standard library, after a depth scan that needs no recursion, so only the fields Vigil reads
can make the record fail, each with its own reason. NaN and Infinity literals are not JSON and
stay errors.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

import orjson

from app.exceptions import DecodeError

MAX_VALUE_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 64
SHOWN: Final = 60  # characters of an offending value quoted in an error

# Strings (skipped whole) and brackets: enough to measure nesting without parsing.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")
_PY_DIGITS_LIMIT = 4000  # below the interpreter's int-from-text limit (4300 digits)


class BigNumber(float):
    """A JSON number outside a double's range (`1e999`), kept with its text.

    Its float value is +-inf, so every numeric rule rejects it as not finite; `dumps` writes
    the original text back.
    """

    text: str

    def __new__(cls, text: str) -> BigNumber:
        value = super().__new__(cls, "-inf" if text.lstrip().startswith("-") else "inf")
        value.text = text
        return value

    def __repr__(self) -> str:
        return self.text


def loads(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text (at most `max_depth` levels deep); DecodeError(kind "json") if not."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in exc.msg:
            raise _too_deep(max_depth) from None
        return _loads_slow(raw, max_depth, exc.msg)
    # Nesting is at most the number of brackets (those in strings count too): a record with
    # few of them, every well-formed event, needs no walk of the parsed value.
    if raw.count(b"{") + raw.count(b"[") > max_depth and _deeper_than(value, max_depth):
        raise _too_deep(max_depth)
    return value


def _loads_slow(raw: bytes, max_depth: int, orjson_msg: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"value: not valid UTF-8 JSON ({exc.reason})", "json") from None
    if text_depth(raw) > max_depth:
        raise _too_deep(max_depth)
    try:
        return json.loads(
            text, parse_constant=_no_constant, parse_float=_float, parse_int=_int, strict=True
        )
    except (ValueError, RecursionError):
        raise DecodeError(f"value: not valid UTF-8 JSON ({orjson_msg})", "json") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else BigNumber(text)


def _int(text: str) -> int | float:
    if len(text) > _PY_DIGITS_LIMIT:
        return BigNumber(text)
    return int(text)


def _too_deep(max_depth: int) -> DecodeError:
    return DecodeError(f"value: nested deeper than {max_depth} levels", "json")


def _deeper_than(value: Any, limit: int) -> bool:
    """True when the parsed `value` nests more than `limit` objects/arrays (no recursion)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def text_depth(raw: bytes) -> int:
    """The deepest nesting of brackets outside strings in JSON text (valid or not)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token[0] in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def dumps(value: Any) -> bytes:
    """Serialise a value from `loads` back to JSON text, whatever it holds.

    orjson where it can; values with lone surrogates go through the standard library (which
    escapes them), big numbers are written as the text they came as.
    """
    try:
        return orjson.dumps(value, default=_fragment)
    except TypeError:
        return _dump_slow(value).encode()


def _fragment(value: Any) -> Any:
    if isinstance(value, BigNumber):
        return orjson.Fragment(value.text.encode())
    raise TypeError


def _dump_slow(value: Any) -> str:
    if isinstance(value, BigNumber):
        return value.text
    if isinstance(value, dict):
        members = (json.dumps(str(k)) + ":" + _dump_slow(v) for k, v in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump_slow(v) for v in value) + "]"
    return json.dumps(value)


def show(value: object, limit: int = SHOWN) -> str:
    """A value as JSON for an error message, cut to about `limit` characters."""
    if isinstance(value, float) and not isinstance(value, BigNumber):
        text = repr(value)
    else:
        text = dumps(value).decode("utf-8", "replace")
    return shorten(text, limit)


def shorten(text: str, limit: int = SHOWN) -> str:
    """`text` itself up to `limit` characters, else its start and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def has_surrogate(text: str) -> bool:
    """True when `text` holds a lone surrogate (only possible after `\\ud800`-style escapes)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
