"""The broker process as the operating system sees it: alive, ours, reaped; its log's end."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def tail(path: Path, lines: int = 40) -> str:
    """The end of the broker log, for error messages that explain themselves."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a killed child we have not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def is_our_broker(pid: int, props: Path) -> bool:
    """Guard against pid reuse: only signal a process that runs kafka.Kafka with our config."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (not Linux): trust the state file
    return b"kafka.Kafka" in cmdline and str(props).encode() in cmdline


def reap(pid: int) -> None:
    """Collect the exit status if the broker is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
