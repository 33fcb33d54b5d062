"""A sustained peak: webhooks at full speed into ingest while a running ledger consumes them,
both on the same two cores (issue 12, goal 2: "at a sustained peak the ledger falls behind
and never catches up").

``ledger_bench`` measures the live consumer and ingest one after the other, each with the
whole machine. Here they share it, as in production on one host. The ledger is started and
bound first, so its start is not part of the peak. Then ``--webhooks`` events of the
simulator's world (real shapes, so the projection does its real work) are posted, signed,
at concurrency 64.

Every 0.2 s the durable consumer's state (``consumer_info``: messages not yet delivered plus
delivered but not acked) gives the ledger's lag. The bench prints:
- the ingest rate while the ledger competes for the cores;
- the largest lag and the lag when the last webhook is archived and published;
- how long the ledger takes after that to catch up (every message acked, i.e. committed);
- the ledger's rate over the whole peak.
A ledger that keeps up ends within about one batch of ingest; one that falls behind has a
lag that grows for as long as the peak lasts.

    .venv/bin/python -m bench.peak_bench --webhooks 30000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.js.errors import NotFoundError

from bench.ingest_bench import post_all, run_loop, signed_request
from bench.ledger_bench import ReplayPorts, replay_env, spawn, wait_healthy
from bench.stack import bench_stack
from services.common.nats_link import STREAM_NAME
from services.devstack.embedded import wait_for_port
from services.stripe_simulator import WorldConfig, iter_events, serialize_event

CONSUMER = "peak"
SAMPLE_SECONDS = 0.2


@dataclass
class Lag:
    """The durable consumer's lag over time: (seconds since the peak began, messages)."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def largest(self) -> int:
        return max((lag for _, lag in self.samples), default=0)

    def by_second(self) -> list[int]:
        """The largest lag in each second of the peak: flat if the ledger keeps up, growing
        if it falls behind."""
        worst: dict[int, int] = {}
        for at, behind in self.samples:
            worst[int(at)] = max(worst.get(int(at), 0), behind)
        return [worst[second] for second in sorted(worst)]


async def sample_lag(nats_url: str, lag: Lag, started: float, stop: asyncio.Event) -> None:
    """Record the consumer's lag every ``SAMPLE_SECONDS`` until ``stop``."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        while not stop.is_set():
            info = await js.consumer_info(STREAM_NAME, CONSUMER)
            behind = (info.num_pending or 0) + (info.num_ack_pending or 0)
            lag.samples.append((time.perf_counter() - started, behind))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)
    finally:
        await client.close()


async def wait_bound(nats_url: str, timeout: float = 60) -> None:
    """Until the ledger has created its durable consumer (it fetches from then on)."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        deadline = time.monotonic() + timeout
        while True:
            try:
                await js.consumer_info(STREAM_NAME, CONSUMER)
                return
            except NotFoundError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await client.close()


@dataclass(frozen=True)
class PeakResult:
    webhooks: int
    ingest_seconds: float  # from the first post until the last webhook was published
    ledger_seconds: float  # from the first post until the ledger had acked every message
    largest_lag: int
    lag_at_ingest_end: int
    lag_by_second: list[int]


async def peak(nats_url: str, http_port: int, bodies: list[bytes]) -> PeakResult:
    """Post every body while sampling the ledger's lag; wait until the ledger caught up."""
    signed_at = time.time()
    requests = [signed_request(body, http_port) for body in bodies]
    lag = Lag()
    stop = asyncio.Event()
    started = time.perf_counter()
    sampler = asyncio.create_task(sample_lag(nats_url, lag, started, stop))
    await post_all(http_port, requests, bodies, 64, signed_at)
    # Archived; published by the outbox right after (the stream's last sequence).
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        while (await js.stream_info(STREAM_NAME)).state.messages < len(bodies):
            await asyncio.sleep(0.005)
        ingest_done = time.perf_counter()
        at_end = lag.samples[-1][1] if lag.samples else 0
        while True:
            info = await js.consumer_info(STREAM_NAME, CONSUMER)
            if not info.num_pending and not info.num_ack_pending:
                break
            await asyncio.sleep(0.005)
        ledger_done = time.perf_counter()
    finally:
        await client.close()
        stop.set()
        await sampler
    return PeakResult(
        len(bodies),
        ingest_done - started,
        ledger_done - started,
        lag.largest(),
        at_end,
        lag.by_second(),
    )


def world_bodies(count: int, tenants: int, months: int) -> list[bytes]:
    """The first ``count`` events of the simulator's world, as Stripe would send them."""
    bodies: list[bytes] = []
    for event in iter_events(WorldConfig(tenants=tenants, months=months)):
        if len(bodies) >= count:
            break
        bodies.append(serialize_event(event))
    if len(bodies) < count:
        raise SystemExit(f"the world has only {len(bodies)} events: more --tenants")
    return bodies


def run(count: int, tenants: int, months: int) -> PeakResult:
    bodies = world_bodies(count, tenants, months)
    with bench_stack() as stack:
        ports = ReplayPorts.free()
        env = replay_env(stack, ports, 2000, 1)
        env.update(LEDGER_CONSUME="1", LEDGER_CONSUMER_NAME=CONSUMER)
        logs = stack_logs()
        children = [spawn("services.ingest", env, logs / "peak-ingest.log")]
        try:
            wait_for_port(ports.ingest_http, 60, children[0])
            wait_healthy(f"http://127.0.0.1:{ports.ingest_admin}/healthz", children[0])
            children.append(spawn("services.ledger", env, logs / "peak-ledger.log"))
            wait_healthy(f"http://127.0.0.1:{ports.ledger_admin}/healthz", children[1])
            run_loop(wait_bound(stack.nats_url))
            return run_loop(peak(stack.nats_url, ports.ingest_http, bodies))
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(30)


def stack_logs() -> Path:
    """Where the services' logs go (as ledger_bench: ``BENCH_LOG_DIR``, else the temp dir)."""
    return Path(os.environ.get("BENCH_LOG_DIR", tempfile.gettempdir()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    for _ in range(args.runs):
        r = run(args.webhooks, args.tenants, args.months)
        ingest_rate = r.webhooks / r.ingest_seconds
        ledger_rate = r.webhooks / r.ledger_seconds
        catch_up = r.ledger_seconds - r.ingest_seconds
        print(
            f"peak of {r.webhooks} webhooks, ingest and a running ledger on the same cores:"
            f" ingest {ingest_rate:,.0f} webhooks/s archived + published in"
            f" {r.ingest_seconds:.2f} s; the ledger caught up"
            f" {catch_up:.2f} s after the last one was published"
            f" ({ledger_rate:,.0f} events/s over the peak); lag at most {r.largest_lag:,}"
            f" messages, {r.lag_at_ingest_end:,} when ingest finished;"
            f" catch-up / peak duration {catch_up / r.ingest_seconds:.3f};"
            f" load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        print("  largest lag in each second: " + ", ".join(f"{n:,}" for n in r.lag_by_second))


if __name__ == "__main__":
    main()
