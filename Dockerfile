# Vigil worker image. Build: docker build -t vigil .   Run: docker run -e VIGIL_BROKER=kafka://kafka:9092 vigil
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
# The developer tools (local Kafka, traffic generator, demo) stay out of the worker image
# (tests/unit/test_image_install.py runs this step and lists what it installs).
RUN rm -rf app/devtools && pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 vigil \
    && mkdir -p /var/lib/vigil && chown vigil:vigil /var/lib/vigil
COPY --from=build /install /usr/local
USER vigil
WORKDIR /home/vigil
# RocksDB tables live on a volume so a restarted container keeps them (they only ever hold
# committed state: after a crash too, the worker reads only the changelog tail).
ENV VIGIL_STORE_DIR=/var/lib/vigil \
    VIGIL_WEB_PORT=6066 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/vigil"]
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=2).status == 200 else 1)"
# SIGTERM lets Faust commit and close the stores; give it time (stop_grace_period >= 60s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["vigil"]
CMD ["worker"]
