"""The live consumer's NATS share alone: drain N messages from a durable pull consumer and ack
each, with nats-py's ``PullSubscription.fetch`` (baseline) and with the ledger's own pull
client (services/ledger/jetstream_pull.py), in the same run against one embedded NATS server.

No PostgreSQL, no projection: what is left is exactly the part of the live ledger's CPU that
the pull client decides (issue 12, goal 2). Prints CPU microseconds per message (this process:
the client's parsing, waiting and acks) and messages/s for each, and their ratio.

    .venv/bin/python -m bench.jetstream_pull_bench --messages 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import uvloop
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from services.devstack.embedded import EmbeddedNats, free_port
from services.ledger.jetstream_pull import JetStreamPull

STREAM = "PULLBENCH"
SUBJECT = "pullbench.event"


async def publish(client: Client, count: int, size: int) -> None:
    """Messages shaped like the live stream's: a JSON payload and a Nats-Msg-Id header."""
    js = client.jetstream()
    body = json.dumps({"id": "evt_x", "pad": "x" * size}).encode()
    for start in range(0, count, 1000):
        futures = [
            await js.publish_async(SUBJECT, body, headers={"Nats-Msg-Id": f"m{i}"})
            for i in range(start, min(count, start + 1000))
        ]
        await asyncio.gather(*futures)


async def drain_nats_py(client: Client, durable: str, count: int, batch: int) -> None:
    sub = await client.jetstream().pull_subscribe_bind(durable=durable, stream=STREAM)
    done = 0
    while done < count:
        try:
            msgs = await sub.fetch(batch, timeout=0.5)
        except TimeoutError:
            continue
        for msg in msgs:
            await msg.ack()
        done += len(msgs)
    await sub.unsubscribe()


async def drain_own(client: Client, durable: str, count: int, batch: int) -> None:
    pull = JetStreamPull(client, STREAM, durable)
    await pull.start()
    done = 0
    while done < count:
        msgs = await pull.fetch(batch, 0.5)
        await pull.ack(msgs)
        done += len(msgs)
    await pull.stop()


async def measure(
    client: Client,
    name: str,
    drain: Callable[[Client, str, int, int], Awaitable[None]],
    count: int,
    batch: int,
) -> tuple[float, float]:
    durable = f"{name}_{uuid.uuid4().hex[:8]}"
    js = client.jetstream()
    await js.add_consumer(
        STREAM,
        ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            max_ack_pending=max(1000, batch * 8),
        ),
    )
    await client.flush()
    cpu, wall = time.process_time(), time.perf_counter()
    await drain(client, durable, count, batch)
    await client.flush()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for _ in range(100):  # the server applies acks asynchronously
        info = await js.consumer_info(STREAM, durable)
        if not info.num_ack_pending and not info.num_pending:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"{name}: not every message acknowledged: {info}")
    await js.delete_consumer(STREAM, durable)
    return cpu * 1e6 / count, count / wall


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pullbench-") as root:
        server = EmbeddedNats(Path(root), free_port())
        server.start()
        try:
            client = await nats.connect(server.url)
            await client.jetstream().add_stream(
                StreamConfig(name=STREAM, subjects=[SUBJECT], storage=StorageType.FILE)
            )
            await publish(client, args.messages, args.payload)
            drains = {"nats-py fetch": drain_nats_py, "own pull": drain_own}
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in drains}
            for _ in range(args.rounds):  # interleaved: A B, A B, ...
                for name, drain in drains.items():
                    key = name.split()[0].replace("-", "")
                    results[name].append(
                        await measure(client, key, drain, args.messages, args.batch)
                    )
            await client.close()
        finally:
            server.stop()
    print(
        f"{args.messages} messages of ~{args.payload} B, batch {args.batch}, {args.rounds} rounds"
    )
    for name, rows in results.items():
        cpu = ", ".join(f"{c:.1f}" for c, _ in rows)
        rate = ", ".join(f"{r:,.0f}" for _, r in rows)
        print(f"{name}: client CPU us/message {cpu}; messages/s {rate}")
    base = results["nats-py fetch"]
    own = results["own pull"]
    ratios = ", ".join(f"{o[0] / b[0]:.2f}" for b, o in zip(base, own, strict=True))
    print(f"own / nats-py client CPU per message, by round: {ratios}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jetstream_pull_bench", description=__doc__)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--payload", type=int, default=2000, help="payload padding in bytes")
    parser.add_argument("--rounds", type=int, default=3)
    uvloop.run(run(parser.parse_args(argv)))  # the services' loop (services/common/lifecycle.py)


if __name__ == "__main__":
    main()
