"""py-spy on a running worker: record collapsed stacks, then rank the hot spots.

py-spy is optional (`pip install py-spy` into the venv); without it `--profile` is skipped with
a note. It samples the worker from outside (no code change, no import in the worker).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.is_file() else shutil.which("py-spy")


class Recorder:
    """`py-spy record --format raw` on a pid until `stop()`."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.out = out
        self.cmd = [exe, "record", "--pid", str(pid), "--rate", str(rate)]
        self.cmd += ["--format", "raw", "--output", str(out), "--nonblocking"]
        # e.g. BENCH_PYSPY_FLAGS="--idle --threads": where the threads wait, per thread
        self.cmd += os.environ.get("BENCH_PYSPY_FLAGS", "").split()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Recorder:
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        return self

    def stop(self) -> str:
        """Stop sampling (SIGINT makes py-spy write its output); returns its stderr."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode(errors="replace")


def _frame_name(frame: str) -> str:
    """`func (path/to/file.py:123)` -> `func (pkg/file.py)` with a short, stable path."""
    func, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def _package(name: str) -> str:
    """Which package a frame's code belongs to (self time is summed per package)."""
    path = name.split(" (", 1)[1].rstrip(")")
    top = path.split("/", 1)[0]
    if top in ("app", "agents", "tables"):
        return "vigil"
    if "/" not in path or top.startswith("<"):
        return "stdlib"
    return top


def hot_spots(raw: Path, top: int = 15) -> dict[str, object]:
    """Rank functions by self samples and by inclusive samples, from py-spy's raw output."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    pkg_c: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [_frame_name(f) for f in stack.split(";")[1:]]  # [0] is the thread/process
        if not frames:
            continue
        total += count
        self_c[frames[-1]] += count
        pkg_c[_package(frames[-1])] += count
        for name in set(frames):
            incl_c[name] += count

    def rows(c: Counter[str], only_ours: bool = False) -> list[tuple[str, float]]:
        items = [
            (name, n)
            for name, n in c.most_common()
            if not only_ours or name.split(" (", 1)[1].startswith(("app/", "agents/", "tables/"))
        ]
        return [(name, round(100.0 * n / max(total, 1), 1)) for name, n in items[:top]]

    return {
        "samples": total,
        "self_by_package": [
            (name, round(100.0 * n / max(total, 1), 1)) for name, n in pkg_c.most_common()
        ],
        "self": rows(self_c),
        "inclusive": rows(incl_c),
        "inclusive_vigil": rows(incl_c, only_ours=True),
    }


def format_hot_spots(spots: dict[str, object]) -> str:
    lines = [f"samples: {spots['samples']}"]
    lines.append("-- self time by package")
    for name, pct in spots["self_by_package"]:  # type: ignore[attr-defined]
        lines.append(f"  {pct:5.1f} %  {name}")
    for key, title in (
        ("self", "self time (where the CPU is)"),
        ("inclusive", "inclusive time (what it is spent under)"),
        ("inclusive_vigil", "inclusive time, Vigil's own code"),
    ):
        lines.append(f"-- {title}")
        for name, pct in spots[key]:  # type: ignore[attr-defined]
            lines.append(f"  {pct:5.1f} %  {name}")
    return "\n".join(lines)
