"""Write deploy/k8s/prometheusrule.yaml from deploy/prometheus/rules.yml (the one source).

    .venv/bin/python deploy/k8s/render_prometheusrule.py

tests/unit/test_deploy_manifests.py fails when the committed file differs from what this
writes, so the Prometheus Operator's rules and the plain Prometheus rules cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "prometheus" / "rules.yml"
TARGET = HERE / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules.yml by deploy/k8s/render_prometheusrule.py: do not
# edit; change rules.yml and run the script (a test fails when they differ).
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as `|` blocks, as rules.yml writes them."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render() -> str:
    """The PrometheusRule resource holding rules.yml's groups, unchanged."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "vigil", "labels": {"app.kubernetes.io/name": "vigil"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(
        resource, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
    )


if __name__ == "__main__":
    TARGET.write_text(render())
    sys.stdout.write(f"wrote {TARGET}\n")
