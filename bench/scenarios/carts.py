"""Scenario 3, carts: throughput of a batch of cart events on top of many open carts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import data, preload
from bench.kafka import make_topics, produce
from bench.scenarios.common import GAUGE_WAIT_S, READY_POLL_S, Context, avg_len, watch_worker

CART_TIMEOUT_S = 30 * 86_400  # 30 days: nothing of the pre-load fires during the run


async def carts(ctx: Context, open_carts: int) -> dict[str, Any]:
    tag = f"carts-{open_carts // 1000}k"
    dep = ctx.deployment(tag, ctx.state_guarantee, cart_timeout_s=str(CART_TIMEOUT_S))
    await make_topics(ctx.broker.bootstrap, dep.topics.values(), ctx.partitions)
    start_ms = int(time.time() * 1000)
    pre = data.cart_preload(open_carts, ctx.seed, start_ms)
    topic = dep.topics["cart_events"]
    out: dict[str, Any] = {"open_carts": open_carts, "guarantee": ctx.state_guarantee}
    worker = dep.worker()
    base = 0
    try:
        if ctx.preload_via == "changelog":
            t0 = time.perf_counter()
            states, highest = preload.cart_states(pre, CART_TIMEOUT_S)
            compute_s = time.perf_counter() - t0
            ctx.say(f"{tag}: writing {len(states)} cart states to the changelog")
            clocks = [(p, str(p).encode(), str(highest).encode()) for p in range(ctx.partitions)]
            write_s = await preload.write_changelog(
                ctx.broker.bootstrap,
                preload.changelog_topic(dep.app_id, "carts"),
                ctx.partitions,
                states,
            )
            await preload.write_changelog(
                ctx.broker.bootstrap,
                preload.changelog_topic(dep.app_id, "cart-clocks"),
                ctx.partitions,
                [],
                clocks,
            )
            out["preload"] = {
                "via": "changelog",
                "compute_s": round(compute_s, 1),
                "write_s": round(write_s, 1),
            }
            worker.start()
            ready = await asyncio.to_thread(worker.wait_ready, 900.0, READY_POLL_S)
            out["ready_s_with_recovery"] = round(ready, 2)
        else:
            ctx.say(f"{tag}: producing {open_carts} add_to_cart events (pre-load via worker)")
            await produce(ctx.broker.bootstrap, topic, pre)
            worker.start()
            trace, ready, cpu = await watch_worker(
                ctx, dep, worker, topic, open_carts, timeout=max(900.0, open_carts / 20)
            )
            rate, seconds, _ = trace.rate(0, open_carts)
            out["preload"] = {"via": "worker", "events_per_s": round(rate, 1), **cpu}
            base = open_carts
        out["rss_mib_after_preload"] = round(worker.memory().get("VmRSS", 0.0), 1)
        batch = data.cart_batch(ctx.sizes.cart_batch, open_carts, ctx.seed + 1, start_ms + 1000)
        ctx.say(f"{tag}: measuring a batch of {len(batch)} cart events")
        await produce(ctx.broker.bootstrap, topic, batch)
        trace, _, cpu = await watch_worker(
            ctx, dep, worker, topic, base + len(batch), timeout=900.0, start_at=base
        )
        rate, seconds, events = trace.rate(base, base + len(batch))
        await asyncio.sleep(GAUGE_WAIT_S)  # the table-size gauges refresh every 5 s
        out.update(
            events_per_s=round(rate, 1),
            window_s=round(seconds, 2),
            events_in_window=events,
            batch=len(batch),
            avg_value_bytes=round(avg_len(batch), 1),
            pending_timers=worker.metric("vigil_pending_timers"),
            open_carts_gauge=worker.metric("vigil_open_carts"),
            abandoned=worker.metric("vigil_alerts_total", 'kind="cart_abandoned"'),
            rss_mib=round(worker.memory().get("VmRSS", 0.0), 1),
            **cpu,
        )
    finally:
        worker.stop()
    return out
