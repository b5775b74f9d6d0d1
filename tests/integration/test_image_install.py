"""What the worker image installs: the Dockerfile's build step, run from a clean copy of the
sources into a fresh prefix, installs the worker and leaves the developer tools out.

No Docker engine here, so the build stage's own RUN line is taken from the Dockerfile and run
as written, with the prefix pointed at a temporary folder and `--no-deps` (the dependencies
come from PyPI in the image; what is checked here is the project's own files).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _build_stage() -> tuple[list[str], str]:
    """The build stage's COPY sources and its RUN command."""
    text = (REPO / "Dockerfile").read_text()
    stage = text.split("FROM ", 2)[1]
    copies = re.findall(r"^COPY (\S+) ", stage, flags=re.M)
    runs = re.findall(r"^RUN (.+)$", stage, flags=re.M)
    assert len(runs) == 1, runs
    return copies, runs[0]


def test_the_image_install_has_the_worker_and_no_developer_tools(tmp_path):
    copies, run = _build_stage()
    src = tmp_path / "src"
    src.mkdir()
    for name in copies:
        for part in name.split():
            path = REPO / part
            if path.is_dir():
                shutil.copytree(path, src / part, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, src / part)
    prefix = tmp_path / "install"
    command = run.replace("--prefix=/install", f"--prefix={prefix} --no-deps")
    command = command.replace("pip install", f"{sys.executable} -m pip install -q")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(
        command, shell=True, cwd=src, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    installed = {p.relative_to(prefix).as_posix() for p in prefix.rglob("*.py")}
    site = next(p for p in installed if p.endswith("app/cli.py")).removesuffix("app/cli.py")
    for needed in ("app/cli.py", "app/runtime/service.py", "agents/fraud.py", "tables/cards.py"):
        assert site + needed in installed, needed
    devtools = sorted(p for p in installed if "/app/devtools/" in f"/{p}")
    assert devtools == [], devtools
    assert (REPO / "app" / "devtools").is_dir()  # the source checkout keeps them


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
