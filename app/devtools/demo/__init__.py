"""`vigil demo`: a broker, a worker and realistic traffic in one command, alerts shown live.

Why one command: the first thing anyone wants to know is what Vigil does, and the honest answer
needs a real Kafka, a real worker and traffic with fraud in it. This wires the pieces that
already exist (`app.devtools.kafka`, `app.runtime.topics`, the `vigil worker` command and
`app.devtools.generate`) and prints what comes out of the output topics, as a reader with
`isolation.level=read_committed` sees it.

Demo-only choices, each overridable by setting the variable yourself:
- the worker joins its group fast (`VIGIL_SESSION_TIMEOUT_S`/`VIGIL_REBALANCE_TIMEOUT_S` 10 s;
  production keeps 60 s for fewer rebalances);
- carts are abandoned after 15 s of inactivity (`VIGIL_CART_TIMEOUT_S`, lateness 2 s) instead
  of 30 min, so abandonment and recovery show up while you watch;
- RocksDB state lives in `var/demo/vigil-data` (`VIGIL_STORE_DIR`), apart from a real worker's;
- fraud patterns are 5 times more frequent than in `TrafficGenerator`'s defaults, so alerts
  show up within the first half minute, and 0.2 % of records are malformed (dead letters).

Modules: `choices` (the values above), `broker` (use the configured broker or a local one),
`worker` (the `vigil worker` subprocess), `console` (the lines the user reads) and `session`
(`run_demo`: the steps in order, the traffic and the live output, and the cleanup).
"""

from app.devtools.demo.broker import broker_answers
from app.devtools.demo.console import DemoError, format_output
from app.devtools.demo.session import run_demo

__all__ = ["DemoError", "broker_answers", "format_output", "run_demo"]
