# Vigil worker image.
#   docker build -t vigil .                  the worker (default target)
#   docker build --target demo -t vigil-demo .   plus the traffic generator and `vigil demo`
#   docker run -e VIGIL_BROKER=kafka://kafka:9092 -v vigil-state:/var/lib/vigil vigil
# tests/integration/test_image_install.py runs this file's RUN lines (build stages) from a clean
# clone into a fresh venv and starts the ENTRYPOINT as a non-root user against a real broker;
# tests/unit/test_deploy_manifests.py runs hadolint on it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- deps: only the third-party dependencies, cached until pyproject.toml changes -------------
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && python -m venv /opt/vigil \
    && /opt/vigil/bin/pip install --no-cache-dir -r requirements.txt

# --- build: the worker's own code, without the developer tools --------------------------------
FROM deps AS build
COPY README.md ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
# The developer tools (local Kafka, traffic generator, demo) stay out of the worker image.
RUN rm -rf app/devtools \
    && /opt/vigil/bin/pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info

# --- build-demo: everything, for the demo target ---------------------------------------------
FROM deps AS build-demo
COPY README.md ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
RUN /opt/vigil/bin/pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info

# --- runtime: what every target runs on --------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vigil" \
      org.opencontainers.image.description="Stream processing on faust-streaming: card-fraud alerts and cart abandonment from Kafka topics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can check it, and the volume's owner is
# known before the container starts (fsGroup 10001 in deploy/k8s).
RUN groupadd --system --gid 10001 vigil \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/vigil --create-home \
       --shell /usr/sbin/nologin vigil \
    && mkdir -p /var/lib/vigil \
    && chown 10001:10001 /var/lib/vigil
# RocksDB tables live on a volume so a restarted container keeps them (they only ever hold
# committed state: after a crash too, the worker reads only the changelog tail).
ENV PATH=/opt/vigil/bin:$PATH \
    VIGIL_STORE_DIR=/var/lib/vigil \
    VIGIL_WEB_PORT=6066 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/var/lib/vigil"]
WORKDIR /home/vigil
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('VIGIL_WEB_PORT', '6066'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"]
# SIGTERM lets the worker commit its checkpoint and close the stores: exec form, so the signal
# reaches vigil itself (no shell in between); give it time (stop_grace_period >= 60 s).
STOPSIGNAL SIGTERM
USER 10001:10001
ENTRYPOINT ["vigil"]
CMD ["worker"]

# --- demo: the worker plus the traffic generator (`vigil demo` against VIGIL_BROKER) ----------
FROM runtime AS demo
COPY --from=build-demo /opt/vigil /opt/vigil
CMD ["demo"]

# --- worker (default): only what a worker needs -------------------------------------------------
FROM runtime AS worker
COPY --from=build /opt/vigil /opt/vigil
