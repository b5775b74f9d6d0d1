#!/usr/bin/env bash
# Install everything Vigil's tests need on a fresh machine: the Python environment, Debian's
# Prometheus (for promtool and the scrape tests) and Apache Kafka's jars from Maven Central.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.vigil-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "bootstrap: installing ${need_apt[*]} from Debian's packages" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # The package would start a system Prometheus; tests start their own on loopback.
  $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  $SUDO pkill -x prometheus 2>/dev/null || true
fi

# Kafka jars into the cache outside the work tree (~/.cache/vigil by default).
.venv/bin/python -c "from app.devtools.kafka import LocalKafka; print('bootstrap: Kafka jars in', LocalKafka().ensure_jars())"
