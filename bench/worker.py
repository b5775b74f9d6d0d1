"""A real `vigil worker` subprocess per measured run, with its own app id, topics and store."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from app.devtools import processes
from app.devtools.processes import free_port

REPO = Path(__file__).resolve().parents[1]

TOPIC_SETTINGS = {
    "transactions": "VIGIL_TOPIC_TRANSACTIONS",
    "feedback": "VIGIL_TOPIC_FEEDBACK",
    "cart_events": "VIGIL_TOPIC_CART_EVENTS",
    "fraud_alerts": "VIGIL_TOPIC_FRAUD_ALERTS",
    "cart_abandoned": "VIGIL_TOPIC_CART_ABANDONED",
    "cart_recovered": "VIGIL_TOPIC_CART_RECOVERED",
    "dead_letters": "VIGIL_TOPIC_DEAD_LETTERS",
    # Per deployment too: under its default name every run (and any test on the same broker)
    # would share one topic, created with the first run's partition count.
    "txn_scores": "VIGIL_TOPIC_TXN_SCORES",
}


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat), 0 if unknown."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds all processes on the machine used so far (busy time from /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(f) for f in fields]
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # all but idle and iowait (guest is in user)
    return busy / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    """The 1-minute load average (other engineers' test runs share this machine)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


@dataclass
class Deployment:
    """One isolated Vigil deployment on the shared broker: unique app id and topic names."""

    name: str
    bootstrap: str
    workdir: Path
    partitions: int
    guarantee: str = "exactly_once"
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.topics = {kind: f"{self.name}-{kind.replace('_', '-')}" for kind in TOPIC_SETTINGS}
        self.app_id = f"{self.name}-app"
        self.store_dir = self.workdir / "store"
        self.port = free_port()

    @property
    def env(self) -> dict[str, str]:
        return {
            "VIGIL_BROKER": f"kafka://{self.bootstrap}",
            "VIGIL_APP_ID": self.app_id,
            "VIGIL_PARTITIONS": str(self.partitions),
            "VIGIL_PROCESSING_GUARANTEE": self.guarantee,
            "VIGIL_SESSION_TIMEOUT_S": "10",
            "VIGIL_REBALANCE_TIMEOUT_S": "10",
            "VIGIL_STORE_DIR": str(self.store_dir),
            "VIGIL_WEB_PORT": str(self.port),
            "VIGIL_WEB_BIND": "127.0.0.1",
            "VIGIL_LOG_LEVEL": "info",
            **{setting: self.topics[kind] for kind, setting in TOPIC_SETTINGS.items()},
            **self.extra_env,
        }

    def worker(self) -> WorkerProcess:
        return WorkerProcess(self.env, self.workdir, self.port)


class WorkerProcess(processes.WorkerProcess):
    """The shared worker harness (`app.devtools.processes`), logging to `workdir/worker.log`,
    plus what the benchmark reads: memory and CPU from /proc, and the log since a start."""

    def __init__(self, env: dict[str, str], workdir: Path, port: int) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(env, workdir / "worker.log", port, cwd=REPO)
        self.workdir = workdir

    def start(self) -> WorkerProcess:
        super().start()
        return self

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM (peak) of the worker process, in MiB, from /proc."""
        out: dict[str, float] = {}
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return out
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker so far (from /proc/<pid>/stat)."""
        return cpu_seconds(self.pid)

    def log_size(self) -> int:
        """Bytes in the log so far (the log is appended to by every start on this workdir)."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        """The log from byte `offset` on (what the starts after that point wrote)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""
