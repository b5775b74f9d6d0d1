"""Where a run was measured: the machine, and the commit (with or without local changes)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": mem_gib,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def code_state() -> dict[str, Any]:
    """The commit measured, and whether the work tree had uncommitted changes."""
    repo = Path(__file__).resolve().parents[1]

    def git(*a: str) -> str:
        try:
            return subprocess.run(
                ["git", *a], cwd=repo, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except OSError:
            return ""

    dirty = [ln[3:] for ln in git("status", "--porcelain").splitlines() if ln.strip()]
    return {"commit": git("rev-parse", "HEAD"), "dirty_files": len(dirty)}
