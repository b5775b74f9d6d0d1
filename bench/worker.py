"""A real `vigil worker` subprocess per measured run, with its own app id, topics and store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TOPIC_SETTINGS = {
    "transactions": "VIGIL_TOPIC_TRANSACTIONS",
    "feedback": "VIGIL_TOPIC_FEEDBACK",
    "cart_events": "VIGIL_TOPIC_CART_EVENTS",
    "fraud_alerts": "VIGIL_TOPIC_FRAUD_ALERTS",
    "cart_abandoned": "VIGIL_TOPIC_CART_ABANDONED",
    "cart_recovered": "VIGIL_TOPIC_CART_RECOVERED",
    "dead_letters": "VIGIL_TOPIC_DEAD_LETTERS",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class WorkerProcess:
    """`python -m app.cli worker` as a child process, logging to `workdir/worker.log`."""

    def __init__(self, env: dict[str, str], workdir: Path, port: int) -> None:
        self.env = env
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "worker.log"
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def http(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 180.0, interval: float = 0.1) -> float:
        """Block until /readyz is 200; returns seconds since `start()`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited {self.returncode()}:\n{self.tail()}")
            status, _ = self.http("/readyz")
            if status == 200:
                return time.monotonic() - self.started_at
            time.sleep(interval)
        raise RuntimeError(f"worker not ready after {timeout:.0f} s:\n{self.tail()}")

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def metrics(self) -> str:
        status, body = self.http("/metrics")
        return body.decode() if status == 200 else ""

    def metric(self, name: str, label: str = "") -> float | None:
        """The value of the first sample of `name` whose labels contain `label`."""
        for line in self.metrics().splitlines():
            if line.startswith(name) and label in line:
                head, _, value = line.rpartition(" ")
                if head.split("{", 1)[0] == name:
                    try:
                        return float(value)
                    except ValueError:
                        return None
        return None

    def metric_sum(self, name: str, *labels: str) -> float | None:
        """Sum of every sample of `name` whose labels contain all `labels` (None: no /metrics)."""
        text = self.metrics()
        if not text:
            return None
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(label in line for label in labels):
                try:
                    total += float(line.rpartition(" ")[2])
                except ValueError:
                    continue
        return total

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

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM, wait (SIGKILL after `timeout`); returns the seconds it took."""
        started = time.monotonic()
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

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

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])
