"""The chaos harness's workers: start, SIGKILL and restart, SIGTERM; crashes; label gates.

A `Fleet` knows which exits it caused (SIGKILL, SIGTERM), so any other exit is a crash: it is
recorded with the process's error lines and the worker restarted so the run can finish.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from tests.chaos_workload import Gate
from tests.fixtures.worker import Deployment, WorkerProcess
from tests.waiting import wait_until

LABELS_METRIC = re.compile(r'^vigil_table_keys\{table="fraud-labels"\} ([0-9.e+]+)$', re.M)


@dataclass
class Crash:
    name: str
    pid: int
    returncode: int | None
    tail: str
    errors: list[str]  # the process's first ERROR/CRITICAL log lines: why it went


@dataclass
class _GateWatch:
    gate: Gate
    opened_at: float = field(default_factory=time.monotonic)
    seen_at: float | None = None  # when a worker first showed the labels: committed by then
    cleared: threading.Event = field(default_factory=threading.Event)
    cleared_after: float = -1.0


@dataclass
class Stopped:
    name: str
    returncode: int | None
    seconds: float
    tail: str


class Fleet:
    """The workers of one run by name; knows which exits it caused, so any other is a crash."""

    def __init__(self, deployment: Deployment, overrides: dict[str, str], grace_s: float) -> None:
        self.deployment = deployment
        self.overrides = overrides
        self.grace_s = grace_s
        self.current: dict[str, WorkerProcess] = {}
        self.started: list[WorkerProcess] = []
        self.expected_exits: set[int] = set()
        self.crashes: list[Crash] = []
        self.stops: list[Stopped] = []
        self.kills = self.restarts = 0
        self.events: list[str] = []
        self.started_at: dict[int, float] = {}
        self.gates: dict[int, _GateWatch] = {}
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def log(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self._t0:6.1f}s {what}")

    def start(self, name: str) -> WorkerProcess:
        started_at = time.monotonic()  # before the process exists: its follower starts later
        worker = self.deployment.worker(name, **self.overrides).start()
        self.started_at[id(worker)] = started_at
        with self._lock:
            self.current[name] = worker
            self.started.append(worker)
        self.log(f"start {name} pid={worker.proc.pid if worker.proc else '?'}")
        return worker

    def snapshot(self) -> list[WorkerProcess]:
        with self._lock:
            return list(self.current.values())

    def kill(self, name: str) -> None:
        """SIGKILL and restart at once on the same store dir (a pod restart)."""
        self.check()  # one that already exited by itself is a crash, not this kill
        worker = self.current[name]
        self.expected_exits.add(id(worker))
        worker.kill()
        self.kills += 1
        self.log(f"SIGKILL {name}")
        self.start(name)
        self.restarts += 1

    def stop(self, name: str) -> threading.Thread:
        """SIGTERM in the background: the worker leaves the group and must exit 0 in its grace."""
        self.check()
        with self._lock:
            worker = self.current.pop(name)
        self.expected_exits.add(id(worker))
        self.log(f"SIGTERM {name}")

        def run() -> None:
            t = time.monotonic()
            rc = worker.stop(timeout=self.grace_s)
            self.stops.append(Stopped(name, rc, time.monotonic() - t, worker.tail(30)))
            self.log(f"{name} exited {rc} after {time.monotonic() - t:.1f}s")

        thread = threading.Thread(target=run, name=f"stop-{name}", daemon=True)
        thread.start()
        return thread

    def check(self) -> None:
        """Record every worker that exited by itself; restart it so the run can finish."""
        for worker in list(self.started):
            if worker.alive() or id(worker) in self.expected_exits:
                continue
            self.expected_exits.add(id(worker))
            rc = worker.proc.returncode if worker.proc else None
            pid = worker.proc.pid if worker.proc else -1
            self.crashes.append(Crash(worker.name, pid, rc, worker.tail(40), _errors(worker, pid)))
            self.log(f"CRASH {worker.name} pid={pid} exited {rc}")
            if self.current.get(worker.name) is worker:
                self.start(worker.name)

    @staticmethod
    def ready(worker: WorkerProcess) -> bool:
        return worker.alive() and worker.http("/readyz")[0] == 200

    def wait_all_ready(self, timeout: float) -> list[str]:
        """Poll until every current worker is ready at once; returns those that are not."""

        def all_ready() -> bool:
            self.check()
            return all(self.ready(w) for w in self.snapshot())

        wait_until(all_ready, timeout, interval=0.5)
        return [w.name for w in self.snapshot() if not self.ready(w)]

    def open_gate(self, gate: Gate) -> None:
        with self._lock:
            self.gates[gate.batch] = _GateWatch(gate)

    def cleared(self, batch: int) -> bool:
        with self._lock:
            watch = self.gates.get(batch)
        return watch is not None and watch.cleared.is_set()

    def poll_gates(self) -> None:
        """Clear a gate once some worker shows its labels and every worker started before
        that moment shows them too (later ones catch up with them before any transaction)."""
        with self._lock:
            watches = [w for w in self.gates.values() if not w.cleared.is_set()]
        if not watches:
            return
        counts = {id(w): (w, self._labels(w)) for w in list(self.started) if w.alive()}
        now = time.monotonic()
        for watch in watches:
            need = watch.gate.labels
            if watch.seen_at is None and any(n >= need for _, n in counts.values()):
                watch.seen_at = now
            if watch.seen_at is None:
                continue
            seen_at = watch.seen_at
            if all(n >= need or self.started_at[i] > seen_at for i, (_, n) in counts.items()):
                watch.cleared_after = now - watch.opened_at
                watch.cleared.set()
                self.log(f"gate {watch.gate.batch}: {need} labels on every worker")

    @staticmethod
    def _labels(worker: WorkerProcess) -> float:
        status, body = worker.http("/metrics")
        m = LABELS_METRIC.search(body.decode(errors="replace")) if status == 200 else None
        return float(m.group(1)) if m else -1.0

    def log_count(self, text: str) -> int:
        """Lines containing `text` in every worker log of the run (restarts append to theirs)."""
        logs = {w.log_path for w in self.started}
        return sum(p.read_text(errors="replace").count(text) for p in logs if p.exists())


def _errors(worker: WorkerProcess, pid: int, limit: int = 5) -> list[str]:
    marks = (f"[{pid}] [ERROR]", f"[{pid}] [CRITICAL]")
    try:
        lines = worker.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line[:400] for line in lines if any(m in line for m in marks)][:limit]
