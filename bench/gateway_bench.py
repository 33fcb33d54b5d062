"""Back-office gateway: server time per page (JSON API, and gwui's HTML pages when present).

The ledger is filled like ``ledger_queries_bench`` (same SQL: ``--full`` is the ledger bench
size, 50,000 accounts / 1,000,000 billing events); the REAL ledger and ingest services run on
a background event loop (gRPC on loopback, tokens on), and the gateway's Flask app is driven
in-process by Flask's test client with an API token, so the figure is the gateway's server
time including its gRPC calls, without an HTTP client's overhead. Baseline, same run, same
app and middleware: a trivial route that answers ``{"ok": true}`` (token lookup included).

    python -m bench.gateway_bench                   # small: 2,000 accounts, 40,000 events
    python -m bench.gateway_bench --full --runs 30  # 50,000 accounts, 1,000,000 events

``--database-url URL --filled`` measures on a database an earlier run (or
``bench.ledger_queries_bench``) already filled at the same size: it is migrated to the head and
the 3-minute fill skipped (NATS still comes from an embedded server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, jsonify

from bench.ledger_queries_bench import AS_OF, _pct, fill
from bench.stack import BenchStack, bench_stack
from services.common.migrate import upgrade_to_head
from services.common.stripe_client import StripeSettings
from services.devstack.embedded import EmbeddedNats, free_port
from services.ingest.app import IngestService, start_ingest
from services.ingest.settings import IngestSettings
from services.ledger.app import LedgerService, start_ledger
from services.ledger.settings import LedgerSettings

T = TypeVar("T")
TOKEN = "bench-admin-token-0123456789abcdef"
GOAL_P95_MS = 150.0


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(300)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def _start(url: str, nats_url: str) -> tuple[IngestService, LedgerService]:
    ingest = await start_ingest(IngestSettings(
        database_url=url, nats_url=nats_url, host="127.0.0.1", http_port=0, grpc_port=0,
        admin_port=0, webhook_secrets=["whsec_bench"], signature_tolerance=300,
        max_body_bytes=1 << 20, commit_timeout=2.0, archive_writers=1,
        outbox_sweep_interval=5.0, stream_max_age_days=1.0, log_level="WARNING",
        stripe=StripeSettings(api_key="sk_test_bench", api_base=None, max_retries=0),
    ))
    ledger = await start_ledger(LedgerSettings(
        database_url=url, nats_url=nats_url, ingest_grpc_addr=f"127.0.0.1:{ingest.grpc.port}",
        host="127.0.0.1", grpc_port=0, admin_port=0,
        consumer_name=f"bench_{uuid.uuid4().hex[:8]}", consume=False, batch_size=64,
        fetch_timeout=0.5, ack_wait=30.0, dead_letter_after=5, replay_batch_size=500,
        replay_workers=0, stream_max_age_days=1.0, log_level="WARNING",
    ))
    return ingest, ledger


def _app(url: str, ingest: IngestService, ledger: LedgerService) -> Flask:
    from services.backoffice_gateway.app import create_app
    from services.backoffice_gateway.config import GatewayConfig
    from services.backoffice_gateway.operators import create, issue_token

    app = create_app(GatewayConfig(
        database_url=url,
        ledger_target=f"127.0.0.1:{ledger.grpc.port}",
        ingest_target=f"127.0.0.1:{ingest.grpc.port}",
        drift_target=f"127.0.0.1:{free_port()}",  # no drift service: banners from the ledger
        secret_key="bench",
        dashboard_cache_seconds=30.0,
    ))

    @app.get("/_bench/trivial")
    def trivial() -> Any:
        return jsonify({"ok": True})

    store = app.extensions["gateway"].store
    operator = f"bench-{uuid.uuid4().hex[:8]}"  # a reused database keeps earlier runs' ones
    create(store, operator, "admin", "bench password 123")
    app.config["BENCH_TOKEN"] = issue_token(store, operator, "bench")
    app.config["BENCH_CLOCK"] = _GrpcClock(app)
    return app


def _pages(app: Flask, account: str) -> list[tuple[str, str]]:
    as_of = AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ")
    pages = [
        ("baseline: trivial route", "/_bench/trivial"),
        # cold: neither the dashboard snapshot nor the prior period's trend cached (two
        # GetDashboard calls run together); "prior cached": one call; "snapshot": no call
        ("api dashboard 7d cold", f"/api/v1/dashboard?period=7&as_of={as_of}"),
        ("api dashboard 30d cold", f"/api/v1/dashboard?period=30&as_of={as_of}"),
        ("api dashboard 90d cold", f"/api/v1/dashboard?period=90&as_of={as_of}"),
        ("api dashboard 90d prior cached", f"/api/v1/dashboard?period=90&as_of={as_of}"),
        ("api dashboard 90d snapshot", f"/api/v1/dashboard?period=90&as_of={as_of}"),
        ("api accounts", "/api/v1/accounts"),
        ("api accounts mrr desc", "/api/v1/accounts?sort=mrr&desc=1"),
        ("api accounts plans+status", "/api/v1/accounts?plan=Pro+monthly&plan=Enterprise"
                                      "&status=active&status=past_due"),
        ("api accounts search", "/api/v1/accounts?q=customer+1a"),
        ("api account detail", f"/api/v1/accounts/{account}"),
        ("api account events", f"/api/v1/accounts/{account}/events"),
        ("api account invoices", f"/api/v1/accounts/{account}/invoices"),
        ("api events", "/api/v1/events"),
        ("api events mrr lens", "/api/v1/events?lens=mrr_impact"),
        ("api invoices", "/api/v1/invoices"),
        ("api users", "/api/v1/users"),
        ("api webhooks", "/api/v1/webhooks"),
        ("api webhooks by account", f"/api/v1/webhooks?account_id={account}&outcome=published"),
        ("api plans", "/api/v1/plans"),
        ("api dead letters", "/api/v1/dead-letters"),
        ("api banners", "/api/v1/banners"),
    ]
    if "pages" in app.blueprints:  # gwui's HTML pages, when merged
        pages += [
            ("page dashboard 30d", "/?period=30"),
            ("page accounts", "/accounts"),
            ("page account detail", f"/accounts/{account}"),
            ("page events", "/events"),
            ("page invoices", "/invoices"),
            ("page users", "/users"),
            ("page webhooks", "/webhooks"),
        ]
    return pages


class _GrpcClock:
    """Time the gateway spends waiting in ``Backends.call`` (the services' share)."""

    def __init__(self, app: Flask) -> None:
        self.spent = 0.0
        backends = app.extensions["gateway"].backends
        inner = backends.call

        def timed(service: str, method: Any, request: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(service, method, request)
            finally:
                self.spent += time.perf_counter() - started

        backends.call = timed


def measure(app: Flask, name: str, path: str, runs: int) -> tuple[list[float], list[float]]:
    """Server time per request, and the part of it spent waiting for gRPC answers."""
    client = app.test_client()
    clock: _GrpcClock = app.config["BENCH_CLOCK"]
    gw = app.extensions["gateway"]
    headers = {"Authorization": f"Bearer {app.config['BENCH_TOKEN']}", "Accept": "text/html"}
    if path.startswith("/api/"):
        headers["Accept"] = "application/json"
    answer = client.get(path, headers=headers)  # warm-up (plans, caches, channels)
    if answer.status_code != 200:
        raise SystemExit(f"{path}: {answer.status_code} {answer.get_data(as_text=True)[:300]}")
    samples, grpc_parts = [], []
    for _ in range(runs):
        if name.endswith(" cold"):
            gw.prior_trends.clear()
        if name.endswith((" cold", " prior cached")):
            gw.dashboards.clear()
        clock.spent = 0.0
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        grpc_parts.append(clock.spent * 1000)
        assert answer.status_code == 200, path
    return samples, grpc_parts


@contextmanager
def _stack(database_url: str) -> Iterator[BenchStack]:
    """The throw-away stack, or the given database (migrated) with an embedded NATS."""
    if not database_url:
        with bench_stack() as stack:
            yield stack
        return
    import shutil
    import tempfile

    upgrade_to_head(database_url)
    root = Path(tempfile.mkdtemp(prefix="billing-bench-nats-"))
    nats = EmbeddedNats(root / "nats", free_port())
    nats.start()
    try:
        yield BenchStack(database_url, nats.url)
    finally:
        nats.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="gateway_bench", description=__doc__)
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--full", action="store_true", help="50,000 accounts, 1,000,000 events")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url", default="",
                        help="a database to use instead of a throw-away one (empty, or --filled)")
    parser.add_argument("--filled", action="store_true",
                        help="with --database-url: already filled at this size, skip the fill")
    args = parser.parse_args(argv)
    if args.full:
        args.accounts, args.events = 50_000, 1_000_000
    if args.filled and not args.database_url:
        parser.error("--filled needs --database-url")
    for name in ("GRPC_ADMIN_TOKENS", "GRPC_CLIENT_TOKEN"):
        os.environ[name] = TOKEN
    os.environ.setdefault("FX_RATES", "EUR=1.08,JPY=0.0067")
    with _stack(args.database_url) as stack:
        if args.filled:
            print(f"gateway bench: reusing the filled database ({args.accounts} accounts)",
                  flush=True)
        else:
            print(f"gateway bench: filling {args.accounts} accounts, {args.events} billing "
                  "events", flush=True)
            started = time.perf_counter()
            fill(stack.database_url, args.accounts, args.events)
            print(f"filled in {time.perf_counter() - started:.1f}s", flush=True)
        loop = _Loop()
        ingest, ledger = loop.run(_start(stack.database_url, stack.nats_url))
        try:
            app = _app(stack.database_url, ingest, ledger)
            account = f"t_{(args.accounts // 4) * 2}"
            results = [(name, measure(app, name, path, args.runs))
                       for name, path in _pages(app, account)]
            app.extensions["gateway"].backends.close()
            app.extensions["gateway"].store.dispose()
        finally:
            loop.run(ledger.stop())
            loop.run(ingest.stop())
            loop.close()
    baseline = statistics.median(results[0][1][0])
    print(f"\n{'page (server time)':30} {'p50 ms':>8} {'p95 ms':>8} {'p50/baseline':>13} "
          f"{'gRPC p50 ms':>12}")
    worst = ("", 0.0)
    for name, (samples, grpc_parts) in results:
        p50, p95 = _pct(samples, 0.5), _pct(samples, 0.95)
        if not name.startswith("baseline") and p95 > worst[1]:
            worst = (name, p95)
        print(f"{name:30} {p50:8.2f} {p95:8.2f} {p50 / baseline:12.1f}x "
              f"{_pct(grpc_parts, 0.5):12.2f}")
    verdict = "met" if worst[1] < GOAL_P95_MS else "NOT met"
    print(f"\nworst p95: {worst[0]} {worst[1]:.1f} ms (goal < {GOAL_P95_MS:.0f} ms at the ledger "
          f"bench size; this run: {args.accounts} accounts): {verdict}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
