# The two commands of the README: `make run` and `make test`. Everything else is a helper.
.PHONY: bootstrap test test-unit lint run demo bench chaos kafka-start kafka-stop

bootstrap:
	scripts/bootstrap.sh

# Installs what it needs, starts the Kafka broker (pytest fixture) and Prometheus, runs every test.
test: bootstrap lint
	.venv/bin/python -m pytest -ra

test-unit: bootstrap
	.venv/bin/python -m pytest -ra tests/unit

lint: bootstrap
	.venv/bin/ruff check app agents tables tests bench
	.venv/bin/ruff format --check app agents tables tests bench
	.venv/bin/mypy app
	.venv/bin/ruff check deploy && .venv/bin/ruff format --check deploy
	.venv/bin/hadolint --failure-threshold info Dockerfile
	test -z "$$(gofmt -l deploy/compose/check)"

# A local broker (unless VIGIL_BROKER answers), a worker and generated traffic, alerts shown live.
run demo: bootstrap
	.venv/bin/vigil demo

# Exactly-once with several workers under chaos, the long form of tests/e2e/test_chaos.py:
# CHAOS_ROUNDS runs (default 5) of CHAOS_SECONDS (default 60) with CHAOS_KILLS SIGKILLs, a join
# and a leave each; stops at the first failing run. One summary line per run.
chaos: bootstrap
	CHAOS_ROUNDS=$${CHAOS_ROUNDS:-5} CHAOS_SECONDS=$${CHAOS_SECONDS:-60} \
		.venv/bin/python -m pytest -x -q tests/e2e/test_chaos.py

bench: bootstrap
	.venv/bin/python -m bench

kafka-start: bootstrap
	.venv/bin/vigil kafka start

kafka-stop:
	.venv/bin/vigil kafka stop
