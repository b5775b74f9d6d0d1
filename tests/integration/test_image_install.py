"""What the worker image really runs, without a Docker engine: the Dockerfile's own steps.

From a clean clone of the repository, the worker target's build stages are replayed as the
Dockerfile writes them: each WORKDIR, COPY and ENV, and each RUN line run by a shell, with
the image's absolute paths (/src, /opt/vigil, /var/lib/vigil, /home/vigil) moved under a
temporary root and `python` being the machine's Debian Python 3.11 (the image's base is
python:3.11-slim). The dependencies come from PyPI as in the image. Then the runtime stage's
ENV, USER, ENTRYPOINT and CMD start the worker as the Dockerfile's non-root uid (setpriv, when
the tests run as root) against the real test broker, until `/readyz` answers 200; its
HEALTHCHECK command passes as the same user; the fraud alerts and dead letters it writes for
the test scenarios validate against their topics' schemas; SIGTERM (its STOPSIGNAL) stops it
with exit 0.

What this cannot show: the base image's own files, layer caching, and `docker build` itself
(hadolint checks the Dockerfile's form in tests/unit/test_deploy_manifests.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from app.devtools.processes import free_port
from tests.scenarios import feedback_records, fraud_story
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3.11")
IMAGE_PATH = re.compile(r"(?<![\w.$-])/(?:src|opt|home|var/lib)(?:/[\w.-]+)*")

pytestmark = pytest.mark.integration


@dataclass
class Stage:
    """One FROM ... AS name stage: its base and its instructions (continuations joined)."""

    name: str
    base: str
    steps: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> dict[str, Stage]:
    joined = re.sub(r"\\\n", " ", text)
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest.strip(), flags=re.I)
            assert m, f"every stage is named: {line}"
            current = Stage(m.group(2), m.group(1))
            stages[current.name] = current
        elif current is not None:
            current.steps.append((op, rest.strip()))
    return stages


def chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The stages a target is built from, base first."""
    out = [stages[target]]
    while out[0].base in stages:
        out.insert(0, stages[out[0].base])
    return out


def parse_env(rest: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', rest))


@dataclass
class Root:
    """A temporary stand-in for the image's filesystem, readable by the image's user."""

    path: Path
    clone: Path

    def map(self, text: str) -> str:
        """Move the image's absolute paths under this root."""
        return IMAGE_PATH.sub(lambda m: f"{self.path}{m.group(0)}", text)


def replay_stages(root: Root, stages: list[Stage], env: dict[str, str]) -> dict[str, str]:
    """Run a chain of stages' WORKDIR, ENV, COPY (from the clone) and RUN; returns the ENV."""
    workdir = root.path
    for stage in stages:
        for op, rest in stage.steps:
            if op == "WORKDIR":
                workdir = Path(root.map(rest))
                workdir.mkdir(parents=True, exist_ok=True)
            elif op == "ENV":
                for k, v in parse_env(rest).items():
                    env[k] = root.map(v.strip('"').replace("$PATH", env["PATH"]))
            elif op == "COPY" and not rest.startswith("--from"):
                src, dst = rest.split()
                target = workdir / dst if not dst.startswith("/") else Path(root.map(dst))
                source = root.clone / src
                if source.is_dir():
                    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(source, target)
            elif op == "RUN":
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", root.map(rest)],
                    cwd=workdir,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert done.returncode == 0, (
                    f"{stage.name}: RUN {rest[:80]}...\n{done.stderr[-3000:]}"
                )
    return env


@contextmanager
def built(target: str) -> Iterator[tuple[Root, dict[str, Stage]]]:
    """The stages a target's /opt/vigil comes from, replayed from a clean clone (~1 min)."""
    if not SYSTEM_PYTHON.exists():
        pytest.fail(f"{SYSTEM_PYTHON} is needed (the image's base is a plain Python 3.11)")
    base = Path(tempfile.mkdtemp(prefix="vigil-image-", dir="/tmp"))
    base.chmod(0o755)  # the image's user must reach the venv and the store under it
    try:
        clone = base / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
        root = Root(base / "root", clone)
        tools = base / "bin"  # `python` as in the image: a Python 3.11 on PATH
        tools.mkdir()
        (tools / "python").symlink_to(SYSTEM_PYTHON)
        stages = parse_dockerfile((clone / "Dockerfile").read_text())
        env = {
            "PATH": f"{tools}:/usr/bin:/bin",
            "HOME": str(base),
            **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},
        }
        replay_stages(root, chain(stages, target), env)
        yield root, stages
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[Root, dict[str, Stage]]]:
    """The worker target's build (deps, then build)."""
    with built("build") as done:
        yield done


def test_the_worker_image_has_the_worker_and_no_developer_tools(image) -> None:
    root, stages = image
    worker = chain(stages, "worker")
    assert [s.name for s in worker] == ["runtime", "worker"]
    copied = [rest for op, rest in worker[-1].steps if op == "COPY"]
    assert copied == ["--from=build /opt/vigil /opt/vigil"], copied
    site = next((root.path / "opt" / "vigil" / "lib").glob("python3*/site-packages"))
    for needed in ("app/cli.py", "app/runtime/service.py", "agents/fraud.py", "tables/cards.py"):
        assert (site / needed).is_file(), needed
    assert not (site / "app" / "devtools").exists()
    for tool in ("pytest", "ruff", "mypy", "hypothesis", "bench", "tests"):
        assert not (site / tool).exists(), f"{tool} is in the worker image"
    assert (REPO / "app" / "devtools").is_dir()  # the source checkout keeps them


def _runtime(root: Root, stages: dict[str, Stage]) -> tuple[dict[str, str], str, list[str]]:
    """The runtime stage's ENV, USER and ENTRYPOINT + CMD of the worker target."""
    env: dict[str, str] = {"PATH": "/usr/bin:/bin"}
    user = ""
    entry: list[str] = []
    cmd: list[str] = []
    for stage in chain(stages, "worker"):
        for op, rest in stage.steps:
            if op == "ENV":
                for k, v in parse_env(rest).items():
                    env[k] = root.map(v.strip('"').replace("$PATH", env["PATH"]))
            elif op == "USER":
                user = rest
            elif op == "ENTRYPOINT":
                entry = json.loads(rest)  # exec form, or SIGTERM would reach a shell
            elif op == "CMD":
                cmd = json.loads(rest)
    return env, user, entry + cmd


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, flags=re.M).group(1))  # type: ignore[union-attr]


def test_the_entrypoint_runs_as_non_root_against_the_real_broker_until_ready(
    image, deployment
) -> None:
    root, stages = image
    env, user, argv = _runtime(root, stages)
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root uid, got {user!r}"
    store = Path(env["VIGIL_STORE_DIR"])
    home = root.path / "home" / "vigil"
    for d in (store, home):
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, int(uid), int(gid or uid))  # as the image's RUN chown / --create-home do
    port = free_port()
    env.update(
        {k: v for k, v in deployment.env.items() if k not in env},
        VIGIL_WEB_PORT=str(port),
        HOME=str(home),
    )
    executable = shutil.which(argv[0], path=env["PATH"])
    assert executable and executable.startswith(str(root.path)), executable
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups", "--"]
    log = (root.path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [*as_user, executable, *argv[1:]], cwd=home, env=env, stdout=log, stderr=log
    )
    try:
        ok, _ = wait_until(
            lambda: proc.poll() is not None or _status(f"http://127.0.0.1:{port}/readyz") == 200,
            timeout=180,
            interval=0.5,
        )
        tail = (root.path / "worker.log").read_text(errors="replace")[-3000:]
        assert ok and proc.poll() is None, f"not ready (exit {proc.poll()}):\n{tail}"
        assert _uid_of(proc.pid) != 0
        if as_user:
            assert _uid_of(proc.pid) == int(uid)
        owners = {p.stat().st_uid for p in store.rglob("*")}
        assert owners == {int(uid) if as_user else os.geteuid()}, (
            owners
        )  # state written as the user
        assert (store / "vigil" / "VIGIL-STORE.json").is_file()
        # Nothing written beside the store (deploy/ runs the image with a read-only root).
        assert list(home.iterdir()) == [], list(home.iterdir())

        health = _healthcheck(stages)
        done = subprocess.run(
            [*as_user, *[shutil.which(health[0], path=env["PATH"]) or health[0]], *health[1:]],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert done.returncode == 0, done.stderr

        _outputs_fit_their_schemas(deployment)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, (root.path / "worker.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def _outputs_fit_their_schemas(deployment) -> None:
    """The image's worker at work: the fraud story and a malformed record in, and every
    alert, dead letter and risk score it commits validates against its topic's schema
    (schemas/): a live dead letter with its `ts` (replay leaves it out), one score for every
    transaction but the duplicate."""
    first, second = fraud_story()
    bad = ("transactions", "card-X", b'{"txn_id": "x-1", "card_id": "card-X", "amount": "abc"}')
    deployment.produce([*feedback_records(), *first, *second, bad])
    scored = {v["txn_id"] for k, _, v in [*first, *second] if k == "transactions"}
    for kind, topic, least in (
        ("fraud_alerts", "fraud-alerts", 6),
        ("dead_letters", "vigil-dead-letters", 1),
        ("txn_scores", "txn-scores", len(scored)),  # every transaction but the duplicate
    ):
        schema = json.loads((REPO / "schemas" / f"{topic}.schema.json").read_text())
        records = deployment.consume(kind, min_count=least, timeout=60)
        assert len(records) >= least, (kind, records)
        for key, value in records:
            errors = [e.message for e in Draft202012Validator(schema).iter_errors(value)]
            assert not errors, (topic, errors, value)
            assert set(value) <= set(schema["properties"]), (topic, value)
            if schema["x-vigil-key"] in value:
                assert key == value[schema["x-vigil-key"]], (topic, key, value)
        if topic == "vigil-dead-letters":
            assert "ts" in records[0][1], "a live dead letter carries ts"
        if topic == "txn-scores":
            assert sorted(v["txn_id"] for _, v in records) == sorted(scored), "one score each"


def _healthcheck(stages: dict[str, Stage]) -> list[str]:
    step = next(rest for op, rest in stages["runtime"].steps if op == "HEALTHCHECK")
    cmd = step.split(" CMD ", 1)[1]
    return json.loads(cmd)


def test_the_demo_target_adds_the_developer_tools_and_runs_as_the_image_user() -> None:
    """`docker build --target demo`: the same runtime, the package with app/devtools."""
    with built("build-demo") as (root, stages):
        demo = chain(stages, "demo")
        assert [s.name for s in demo] == ["runtime", "demo"]
        copied = [rest for op, rest in demo[-1].steps if op == "COPY"]
        assert copied == ["--from=build-demo /opt/vigil /opt/vigil"], copied
        site = next((root.path / "opt" / "vigil" / "lib").glob("python3*/site-packages"))
        assert (site / "app" / "devtools" / "generate" / "traffic.py").is_file()
        cmd = [json.loads(rest) for op, rest in demo[-1].steps if op == "CMD"]
        assert cmd == [["demo"]], cmd
        env, user, _ = _runtime(root, stages)
        uid, _, gid = user.partition(":")
        as_user = []
        if os.geteuid() == 0:
            as_user = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
        vigil = shutil.which("vigil", path=env["PATH"])
        assert vigil and vigil.startswith(str(root.path)), vigil
        done = subprocess.run(
            [*as_user, vigil, *cmd[0], "--help"],
            env={**env, "HOME": "/nonexistent"},
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and "--rate" in done.stdout, done.stdout + done.stderr


def test_vigil_kafka_finds_its_broker_files_in_an_installed_package(tmp_path):
    """A plain (non-editable) install of the full package carries the broker's POM and log4j
    config as package data: `vigil kafka` needs no source checkout."""
    prefix = tmp_path / "install"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            # Without it pip uninstalls the venv's own (editable) vigil first: --prefix is
            # no isolation from the running environment's installed packages.
            "--ignore-installed",
            f"--prefix={prefix}",
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    site = next(prefix.rglob("site-packages"))
    code = "from app.devtools.kafka.jars import find_pom; print(find_pom())"
    found = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    pom = Path(found.stdout.strip())
    assert pom.is_relative_to(site) and pom.is_file(), pom
    assert (pom.parent / "log4j.properties").is_file()
