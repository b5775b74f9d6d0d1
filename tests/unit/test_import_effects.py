"""Importing Vigil's modules has no effect beyond defining things, except the one module that
builds the app from the settings (`app.runtime.service`, needed at import by Faust's decorators
in agents/ and tables/): there a bad setting is one line naming it and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_bad_setting_at_agent_import_is_one_line_and_exit_2():
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_WEB_PORT"] = "http"
    done = subprocess.run(
        [sys.executable, "-c", "import agents.fraud"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vigil: bad setting VIGIL_WEB_PORT:"), lines


def test_pure_modules_import_without_settings_or_faust_app():
    code = (
        "import sys, app.replay, app.contract.decode, app.detect.fraud, app.cart.engine, "
        "app.runtime.transactions, app.faust_patches;"
        "assert 'app.runtime.service' not in sys.modules, 'the app was built at import'"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_WEB_PORT"] = "http"  # would fail if any of them read the settings
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, timeout=120)
    assert done.returncode == 0
