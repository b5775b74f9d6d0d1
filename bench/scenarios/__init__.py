"""The measured runs, one module each. Every run returns a JSON-ready dict; `bench.cli` orders,
prints and saves them. How throughput is measured: `bench.scenarios.common`."""

from bench.scenarios.baseline import baseline
from bench.scenarios.carts import carts
from bench.scenarios.common import Context, Sizes
from bench.scenarios.fraud import fraud
from bench.scenarios.latency import latency
from bench.scenarios.recovery import recovery

__all__ = ["Context", "Sizes", "baseline", "carts", "fraud", "latency", "recovery"]
