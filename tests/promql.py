"""Every PromQL expression Vigil ships, in a form a real Prometheus can evaluate.

The Grafana dashboard and the Prometheus rules are text that no Python test would otherwise
exercise: a typo in a metric name or a broken ``histogram_quantile`` shows up only as an empty
panel or a silent alert. These helpers pull every expression out of
``deploy/grafana/dashboards/vigil.json`` (panel targets, nested row panels, template-variable
queries) and ``deploy/prometheus/rules.yml`` (recording and alerting rules), replace Grafana's
variables with values Prometheus accepts, and let tests evaluate them through the HTTP API and
check the metric names they reference.

rules.yml is read with a small extractor for ``- record:``/``- alert:`` items and their
``expr:`` (plain, quoted or block scalar) rather than a YAML library, because the project has no
YAML dependency. The integration test cross-checks the result against the rules the real
Prometheus loaded from the same file, so the extractor cannot silently drift.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_PATH = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "vigil.json"
RULES_PATH = REPO_ROOT / "deploy" / "prometheus" / "rules.yml"

#: What Grafana's built-in interval variables become (Prometheus needs a literal duration).
INTERVAL_VARS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}

#: Dashboard variables that select label values; they become a match-everything regex.
MATCH_ALL_VARS = frozenset({"instance"})

#: Variables that never occur in an expression (only in ``datasource`` fields).
IGNORED_VARS = frozenset({"datasource"})


@dataclass(frozen=True)
class PromExpr:
    """One expression: where it came from, its text as written, and its evaluable form."""

    source: str
    raw: str
    expr: str

    def __str__(self) -> str:
        return f"{self.source}: {self.expr}"


@dataclass(frozen=True)
class Rule:
    """One rule of rules.yml: ``kind`` is ``record`` or ``alert``."""

    group: str
    kind: str
    name: str
    expr: str


# -- Grafana variables -----------------------------------------------------------------------

_VAR = re.compile(r"\$(?:\{(?P<braced>\w+)(?::[\w]+)?\}|(?P<plain>\w+))|\[\[(?P<old>\w+)\]\]")


def substitute_grafana_vars(expr: str) -> str:
    """Replace Grafana variables in `expr` with values Prometheus accepts.

    ``$__rate_interval`` (and ``$__interval``, ``$__range``) become literal durations;
    ``$instance`` / ``${instance}`` become ``.*``, and an equality matcher on such a variable
    (``instance="$instance"``) becomes a regex matcher, because that is what Grafana sends for
    "All". Any other variable is an error, so a new variable cannot slip through unevaluated.
    """
    match_all = "|".join(sorted(MATCH_ALL_VARS))
    expr = re.sub(
        rf'(\w+)\s*=\s*"(\$\{{?(?:{match_all})(?::\w+)?\}}?|\[\[(?:{match_all})\]\])"',
        r'\1=~"\2"',
        expr,
    )

    def repl(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("plain") or m.group("old")
        if name.isdigit():  # "$1" in label_replace is a regex group, not a variable
            return m.group(0)
        if name in INTERVAL_VARS:
            return INTERVAL_VARS[name]
        if name in MATCH_ALL_VARS:
            return ".*"
        if name in IGNORED_VARS:
            return ""
        raise ValueError(f"unknown Grafana variable ${name} in {expr!r}")

    return _VAR.sub(repl, expr)


_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<metric>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$"
)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$", re.DOTALL)


def variable_query_to_promql(query: str) -> str | None:
    """Turn a Grafana Prometheus variable query into the PromQL it runs, if any.

    ``label_values(metric, label)`` selects ``metric``; ``label_values(label)`` selects every
    series with that label; ``query_result(expr)`` is ``expr``. ``label_names()`` and
    ``metrics(...)`` run no PromQL and give None.
    """
    if m := _LABEL_VALUES.match(query):
        metric = m.group("metric")
        return metric if metric else f'{{{m.group("label")}!=""}}'
    if m := _QUERY_RESULT.match(query):
        return m.group("expr")
    if re.match(r"^\s*(label_names|metrics)\(", query):
        return None
    return query


# -- dashboard -------------------------------------------------------------------------------


def load_dashboard(path: Path = DASHBOARD_PATH) -> dict[str, Any]:
    """The dashboard JSON as a dict."""
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including panels nested in (collapsed) rows."""
    stack = list(reversed(dashboard.get("panels", [])))
    while stack:
        panel = stack.pop()
        yield panel
        stack.extend(reversed(panel.get("panels", [])))


def dashboard_exprs(path: Path = DASHBOARD_PATH) -> list[PromExpr]:
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    dashboard = load_dashboard(path)
    out: list[PromExpr] = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            raw = target.get("expr")
            if raw:
                source = (
                    f"panel {panel.get('id')} {panel.get('title')!r} target {target.get('refId')}"
                )
                out.append(PromExpr(source, raw, substitute_grafana_vars(raw)))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        raw = query.get("query", "") if isinstance(query, dict) else (query or "")
        promql = variable_query_to_promql(raw)
        if promql:
            out.append(PromExpr(f"variable {var['name']!r}", raw, substitute_grafana_vars(promql)))
    return out


# -- rules.yml -------------------------------------------------------------------------------

_KEY = re.compile(r"^(?P<indent>\s*)(?P<dash>-\s+)?(?P<key>[A-Za-z_]+):(?:\s+(?P<value>.*))?$")


def _strip_comment(value: str) -> str:
    """Drop a trailing `` # comment`` from a plain scalar."""
    return re.sub(r"\s+#.*$", "", value).strip()


def _scalar(value: str) -> str:
    """A one-line YAML scalar: quoted (with escapes) or plain."""
    value = value.strip()
    if value.startswith('"'):
        end = value.rindex('"')
        decoded: str = json.loads(value[: end + 1])
        return decoded
    if value.startswith("'"):
        end = value.rindex("'")
        return value[1:end].replace("''", "'")
    return _strip_comment(value)


def _block(lines: list[str], start: int, parent_indent: int, style: str) -> tuple[str, int]:
    """A block scalar (``|``/``>`` with optional chomping) starting after line `start`."""
    body: list[str] = []
    i = start + 1
    indent: int | None = None
    while i < len(lines):
        line = lines[i]
        if line.strip():
            this = len(line) - len(line.lstrip())
            if this <= parent_indent:
                break
            if indent is None:
                indent = this
            body.append(line[indent:])
        else:
            body.append("")
        i += 1
    while body and not body[-1]:
        body.pop()
    if style.startswith(">"):
        text = " ".join(s.strip() for s in body if s.strip())
    else:
        text = "\n".join(body)
    return text.strip(), i


def parse_rules(path: Path = RULES_PATH) -> list[Rule]:
    """The recording and alerting rules of a Prometheus rules file, in file order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rules: list[Rule] = []
    group = ""
    current: dict[str, str] = {}
    current_indent = -1

    def flush() -> None:
        if current:
            kind = "record" if "record" in current else "alert"
            if "expr" not in current:
                raise ValueError(f"{path}: rule {current.get(kind)!r} has no expr")
            rules.append(Rule(group, kind, current[kind], current["expr"]))
            current.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        m = _KEY.match(line)
        if not m:
            i += 1
            continue
        indent = len(m.group("indent")) + (len(m.group("dash")) if m.group("dash") else 0)
        key, value = m.group("key"), (m.group("value") or "").strip()
        if key == "name" and m.group("dash") and value[:1] not in ("|", ">"):
            flush()
            group = _scalar(value)
        elif key in ("record", "alert") and m.group("dash"):
            flush()
            current[key] = _scalar(value)
            current_indent = indent
        elif value[:1] in ("|", ">"):
            # A block scalar; skip its lines whatever the key, so text inside an annotation
            # can never be mistaken for a key.
            text, i = _block(lines, i, indent, value)
            if key == "expr" and current and indent == current_indent:
                current["expr"] = text
            continue
        elif key == "expr" and current and indent == current_indent:
            current["expr"] = _scalar(value)
        i += 1
    flush()
    return rules


def rules_exprs(path: Path = RULES_PATH) -> list[PromExpr]:
    """Every rule expression of rules.yml."""
    return [PromExpr(f"{r.kind} {r.name!r}", r.expr, r.expr) for r in parse_rules(path)]


def all_exprs() -> list[PromExpr]:
    """The dashboard's and the rules' expressions together."""
    return dashboard_exprs() + rules_exprs()


# -- names -----------------------------------------------------------------------------------

#: A ``vigil_*`` metric name, not part of a recording-rule name (``level:vigil_x:op``) and not
#: inside a string (label values are quoted; metric names never are).
_VIGIL_NAME = re.compile(r'(?<![\w:"])vigil_[A-Za-z0-9_]*(?![\w:"])')
_RECORDING_NAME = re.compile(r"(?<![\w:])[A-Za-z_][\w]*:[\w:]*(?<!:)")


def _unquoted(expr: str) -> str:
    """`expr` without its string literals (label values, regexes, label_replace arguments)."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def vigil_metric_names(expr: str) -> set[str]:
    """The ``vigil_*`` series names an expression selects."""
    return set(_VIGIL_NAME.findall(_unquoted(expr)))


def recording_rule_names(expr: str) -> set[str]:
    """The recording-rule names (``level:metric:operations``) an expression selects."""
    return set(_RECORDING_NAME.findall(_unquoted(expr)))
