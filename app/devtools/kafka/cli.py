"""``vigil kafka start|stop|status``: the local broker from a shell."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from app.devtools.kafka.errors import KafkaStartError, KafkaToolingError
from app.devtools.kafka.jars import POM_ENV
from app.devtools.kafka.process import LocalKafka


def main_kafka(argv: list[str]) -> int:
    """``vigil kafka start|stop|status``. ``start`` prints ``export VIGIL_BROKER=...`` on stdout
    (everything else on stderr) so ``eval "$(vigil kafka start)"`` configures a shell.

    Exit codes: 0 ok; 1 failed to start or missing tooling; 3 for ``status`` when not running.
    """
    parser = argparse.ArgumentParser(
        prog="vigil kafka", description="Run a local single-node Apache Kafka broker (KRaft)."
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="data/config/log dir (default: $VIGIL_KAFKA_HOME or ./var/kafka)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="jar cache (default: $VIGIL_KAFKA_CACHE or ~/.cache/vigil)",
    )
    parser.add_argument(
        "--pom",
        type=Path,
        default=None,
        help=f"the POM naming the broker jars, log4j.properties beside it (default: ${POM_ENV} "
        "or deploy/kafka/pom.xml of the source checkout)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start the broker (no-op if it already runs)")
    p_start.add_argument("--fresh", action="store_true", help="wipe topics and offsets first")
    p_start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")
    p_stop = sub.add_parser("stop", help="stop the broker")
    p_stop.add_argument("--timeout", type=float, default=20.0, help="seconds before SIGKILL")
    p_status = sub.add_parser("status", help="show whether the broker runs, and where")
    p_status.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)

    try:
        kafka = LocalKafka(args.home, cache_dir=args.cache, pom=args.pom)
        if args.command == "start":
            t0 = time.monotonic()
            st = kafka.start(timeout=args.timeout, fresh=args.fresh)
            how = (
                f"started in {time.monotonic() - t0:.1f} s" if kafka.launched else "already running"
            )
            print(
                f"Kafka {st.version} broker at {st.bootstrap} ({how}; pid {st.pid}; "
                f"log {st.log_path})",
                file=sys.stderr,
            )
            print(f"export VIGIL_BROKER={st.url}")
            return 0
        if args.command == "stop":
            stopped = kafka.stop(timeout=args.timeout)
            print(
                "Kafka broker stopped" if stopped else "no Kafka broker was running",
                file=sys.stderr,
            )
            return 0
        st = kafka.status()
        if args.json:
            data = asdict(st)
            data["log_path"] = str(st.log_path)
            print(json.dumps(data))
        elif st.running:
            print(
                f"running: Kafka {st.version} at {st.bootstrap} (pid {st.pid}; log {st.log_path})"
            )
            print(f"export VIGIL_BROKER={st.url}")
        else:
            print(f"not running (Kafka {st.version}; home {kafka.home})")
        return 0 if st.running else 3
    except (KafkaToolingError, KafkaStartError) as exc:
        print(f"vigil kafka {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_kafka(sys.argv[1:]))
