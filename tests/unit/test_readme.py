"""The README stays true: every setting and every metric is documented, the commands exist."""

from __future__ import annotations

from pathlib import Path

from app.cli import build_parser
from app.observe.metrics import VigilMetrics
from app.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_with_its_default_is_documented():
    for name, field in Settings.model_fields.items():
        row = next(
            (line for line in README.splitlines() if line.startswith(f"| `VIGIL_{name.upper()}`")),
            None,
        )
        assert row is not None, f"VIGIL_{name.upper()} missing from the README"
        default = field.default.as_posix() if hasattr(field.default, "as_posix") else field.default
        assert f"`{'(unset)' if default is None else default}`" in row, row


def test_every_metric_is_documented():
    names = {m.name for m in VigilMetrics().registry.collect() if m.name.startswith("vigil_")}
    assert names
    for name in names:
        documented = name + "_total" if f"`{name}_total`" in README else name
        assert f"`{documented}`" in README, name


def test_every_command_is_documented():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for command in sub.choices:
        assert f"vigil {command}" in README, command
