"""The demo's worker: `vigil worker` through the shared harness (`app.devtools.processes`),
with the demo's settings, ready-checked and stopped, and told about on the console."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from app.devtools.demo.broker import tcp_open
from app.devtools.demo.choices import DEMO_ENV_DEFAULTS, READY_TIMEOUT_S, WORKER_STOP_TIMEOUT_S
from app.devtools.demo.console import DemoError, say
from app.devtools.processes import WorkerProcess
from app.settings import Settings


class Worker:
    """One worker process with the demo's settings, its log in the store dir."""

    def __init__(self, settings: Settings, effective: Settings) -> None:
        """`settings` as the user gave them (to know what they set), `effective` as run."""
        self.settings = settings
        self.effective = effective
        self.process: WorkerProcess | None = None

    @property
    def log(self) -> Path | None:
        return self.process.log_path if self.process is not None else None

    def _env(self) -> dict[str, str]:
        env = {"VIGIL_BROKER": self.effective.broker}
        for field, (name, value) in DEMO_ENV_DEFAULTS.items():
            if field not in self.settings.model_fields_set:
                env[name] = value
        return env

    def _web_host(self) -> str:
        bind = self.effective.web_bind
        return "127.0.0.1" if bind in ("0.0.0.0", "::", "", "localhost") else bind

    def start(self) -> None:
        """Start the worker in its own session (Ctrl-C is ours); SIGTERMed if the demo dies."""
        port = self.effective.web_port
        if tcp_open(self._web_host(), port, timeout=0.5):
            raise DemoError(
                f"port {port} is already in use (VIGIL_WEB_PORT): another worker? "
                "stop it or pick another port"
            )
        store = Path(self.effective.store_dir)
        self.process = WorkerProcess(
            self._env(),
            store / "demo-worker.log",
            port,
            inherit_settings=True,  # the user's VIGIL_* settings are the demo's
            death_signal=signal.SIGTERM,
            host=self._web_host(),
        ).start()
        say(f"worker started (pid {self.process.pid}, log {self.log})")

    def _log_tail(self) -> str:
        if self.process is None:
            return ""
        lines = [ln.strip() for ln in self.process.tail(20).splitlines() if ln.strip()]
        return f"; last log line: {lines[-1][:300]}" if lines else ""

    def gone(self) -> str | None:
        """Why the worker is no longer running, if it is not."""
        process = self.process
        if process is not None and process.proc is not None and not process.alive():
            return (
                f"the worker exited with code {process.returncode()} "
                f"(log {self.log}){self._log_tail()}"
            )
        return None

    async def wait_ready(self) -> None:
        """Poll `/readyz` until the worker is ready; a DemoError if it exits or takes too long."""
        assert self.process is not None
        process = self.process
        say(f"waiting for the worker to be ready (http://{process.host}:{process.port}/readyz)...")
        t0 = time.monotonic()
        while True:
            gone = self.gone()
            if gone:
                raise DemoError(gone)
            status, _ = await asyncio.to_thread(process.http, "/readyz", 2.0)
            if status == 200:
                say(f"worker ready in {time.monotonic() - t0:.1f} s")
                return
            if time.monotonic() - t0 > READY_TIMEOUT_S:
                raise DemoError(
                    f"the worker was not ready after {READY_TIMEOUT_S:.0f} s "
                    f"(log {self.log}){self._log_tail()}"
                )
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM (Faust commits and closes cleanly), SIGKILL if it hangs."""
        process, self.process = self.process, None
        if process is None or not process.alive():
            return
        try:
            if process.stop(timeout=WORKER_STOP_TIMEOUT_S) is None:
                say(f"worker did not stop in {WORKER_STOP_TIMEOUT_S:.0f} s; killed it")
        except KeyboardInterrupt:
            process.kill()
