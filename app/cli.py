"""`vigil`: the command line.

Every subcommand reads the settings first and stops with one line naming the bad setting and
exit code 2, before any Kafka or Faust machinery starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from pydantic import SecretStr

from app.exceptions import BrokerUnavailable, ConfigError
from app.settings import Settings, load_settings

EXIT_CONFIG = 2


def _fail(message: str, code: int) -> int:
    print(f"vigil: {message}", file=sys.stderr)
    return code


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Print the effective settings (secrets hidden) and exit 0."""
    for name, value in settings.model_dump().items():
        shown = "'**********'" if isinstance(value, SecretStr) else repr(value)
        if name == "broker_security_protocol" and value is None:
            shown += f"  # unset: {settings.security_protocol}"
        print(f"{name} = {shown}")
    return 0


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import faulthandler

    from aiokafka.errors import KafkaError

    # A crash in native code (RocksDB, uvloop) prints every thread's Python stack to stderr
    # (the worker's log) instead of leaving only an exit code -11.
    faulthandler.enable()

    from app.runtime.store import prepare_store
    from app.runtime.topics import ensure_topics, wait_for_broker

    # Before any connection: a store dir holding another app's state stops the start (exit 2).
    prepare_store(settings.store_dir, settings.app_id)
    if settings.create_topics:
        # aiokafka logs each failed connection; with no logging configured yet Python would
        # print those lines too, beside the one line below that says what went wrong.
        logging.getLogger("aiokafka").addHandler(logging.NullHandler())
        try:
            created = asyncio.run(ensure_topics(settings))
        except BrokerUnavailable as exc:  # unreachable (retried first): exit 4; refused: 1
            return _fail(str(exc), getattr(exc, "exit_code", 1))
        except (KafkaError, RuntimeError) as exc:  # e.g. topic creation not authorised
            text = str(exc).strip().splitlines()
            return _fail(f"Kafka refused: {text[0] if text else type(exc).__name__}", 1)
        if created:
            print(f"vigil: created topics {', '.join(created)}", file=sys.stderr)
    else:  # the same wait for the broker (VIGIL_BROKER_CONNECT_TIMEOUT_S), then Faust's start
        logging.getLogger("aiokafka").addHandler(logging.NullHandler())
        try:
            asyncio.run(wait_for_broker(settings))
        except BrokerUnavailable as exc:
            return _fail(str(exc), getattr(exc, "exit_code", 1))

    from faust.worker import Worker

    if settings.event_loop == "uvloop":
        # Faust's per-event machinery is mostly event-loop work: uvloop's loop does it for
        # about a fifth less CPU (see bench/README.md). Set before Faust creates its loop.
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.set_event_loop(asyncio.new_event_loop())
    from app.runtime.service import app

    worker = Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()  # exits the process via sys.exit
    return 0


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from app.replay import run_replay

    summary = run_replay(args.files, args.out, settings, topic=args.topic)
    for name, count in summary.items():
        print(f"{name}: {count}")
    return 0


def _cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from app.contract.timeutil import parse_ts
    from app.evaluate import format_report, run_evaluate

    since = parse_ts(args.since, "--since") if args.since else None
    until = parse_ts(args.until, "--until") if args.until else None
    result = run_evaluate(
        args.scores, args.labels, field=args.field, k=args.k, since_ms=since, until_ms=until
    )
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_report(result, args.k))
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from app.devtools.demo import run_demo
    except ModuleNotFoundError as exc:
        return _no_devtools(exc)
    return run_demo(settings, rate=args.rate, seconds=args.seconds)


def _no_devtools(exc: ModuleNotFoundError) -> int:
    """The worker image leaves the developer tools out: say so in one line."""
    if not (exc.name or "").startswith("app.devtools"):
        raise exc
    return _fail(
        "the developer tools (app.devtools) are not installed here: "
        "run `vigil demo` and `vigil kafka` from a source checkout",
        1,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Fraud alerts and cart abandonment from Kafka topics (faust-streaming).",
        epilog="Settings come from VIGIL_* environment variables and an optional TOML file "
        "named by VIGIL_CONFIG; see the README.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("worker", help="run a worker (agents, tables, web server on VIGIL_WEB_PORT)")
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser(
        "replay",
        help="run the detectors offline over JSONL files",
        description="Run the same detectors as the live workers over JSONL files, in file "
        "order. Each line is an envelope {'topic','key','value'} or a `kcat -J` record; with "
        "--topic, bare event lines of that topic. Writes fraud-alerts.jsonl, "
        "cart-abandoned.jsonl, cart-recovered.jsonl, dead-letters.jsonl and txn-scores.jsonl "
        "to --out, learning from the feedback in the files as a worker does.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="JSONL input ('-' for stdin)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--topic", help="read bare event lines as records of this topic")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser(
        "evaluate",
        help="AUC ROC, average precision, Card Precision@k of scores against labels",
        description="Join SCORES (txn-scores.jsonl, or fraud-alerts.jsonl: unalerted "
        "transactions score 0) with LABELS (one line per transaction: txn_id, fraud 0/1 or "
        "label fraud/legit, card_id, ts) and print AUC ROC, average precision, Card "
        "Precision@k (Le Borgne et al.), per-rule precision and recall, and the alert rate.",
    )
    p.add_argument("scores", metavar="SCORES", help="txn-scores.jsonl or fraud-alerts.jsonl")
    p.add_argument("labels", metavar="LABELS", help="labels JSONL, one line per transaction")
    p.add_argument("--field", default="score", help="score field (default score; rule_score)")
    p.add_argument("--k", type=int, default=100, help="cards per day for CP@k (default 100)")
    p.add_argument("--since", help="only transactions at or after this ts (RFC 3339)")
    p.add_argument("--until", help="only transactions before this ts (RFC 3339)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "demo", help="start a local broker (unless VIGIL_BROKER answers), a worker and traffic"
    )
    p.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (0: Ctrl-C)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "kafka",
        help="start|stop|status a local Apache Kafka broker (KRaft); "
        "`vigil kafka --help` for its flags",
        add_help=False,
    )
    p.set_defaults(func=None)

    p = sub.add_parser("check", help="validate the settings and print them")
    p.set_defaults(func=_cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vigil` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["kafka"]:  # every flag after `kafka` is the local broker tool's own
        try:
            from app.devtools.kafka import main_kafka
        except ModuleNotFoundError as exc:
            return _no_devtools(exc)
        return main_kafka(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return _fail(f"bad setting {exc}", EXIT_CONFIG)
    try:
        return int(args.func(args, settings))
    except ConfigError as exc:
        return _fail(f"bad setting {exc}", EXIT_CONFIG)


if __name__ == "__main__":
    sys.exit(main())
