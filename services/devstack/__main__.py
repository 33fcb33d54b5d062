"""``make run``: the whole suite on one machine, with embedded PostgreSQL and NATS.

Starts (in order) PostgreSQL and NATS unless ``DATABASE_URL`` / ``NATS_URL`` point elsewhere,
applies the migrations, starts every service and the Stripe simulator, loads demo data through
the real webhook path (``DEMO_DATA=0`` skips it), prints one ``ready:`` line, and on Ctrl-C or
SIGTERM stops everything in reverse order. Data lives in ``DATA_DIR`` (default ``.data``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from services.common.config import env_int, env_optional, env_str, sqlalchemy_url
from services.common.migrate import upgrade_to_head
from services.devstack.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    die_with_parent,
    wait_for_port,
)
from services.devstack.stale import stop_stale_server

REPO_ROOT = Path(__file__).resolve().parents[2]
# Illustrative rates for the demo only; production sets FX_RATES from its treasury source.
DEMO_FX_RATES = "EUR=1.08,JPY=0.0067"


@dataclass
class Stack:
    """Everything `make run` started, so it can be stopped in reverse order."""

    postgres: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def stop(self) -> None:
        for _name, child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for name, child in reversed(self.children):
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in 15 s, killing it", file=sys.stderr)
                child.kill()
                child.wait(5)
        self.children.clear()
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.stop()


def demo_start_date(data_dir: Path) -> str:
    """The demo history's first day: chosen on the first run so the history ends today (the
    dashboard's 7/30/90-day windows then show activity), and kept in the data folder, so later
    runs redeliver the very same events (duplicates, not divergences)."""
    marker = data_dir / "demo_start_date"
    if marker.exists():
        return marker.read_text().strip()
    months = env_int("SIM_MONTHS", 6)
    chosen = (date.today() - timedelta(days=months * 31)).isoformat()
    marker.write_text(chosen + "\n")
    return chosen


def _spawn(stack: Stack, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    child = subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=log,
        stderr=log,
        cwd=REPO_ROOT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    stack.children.append((name, child))


def _wait_healthy(name: str, url: str, stack: Stack, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child_name, child in stack.children:
            if child.poll() is not None:
                raise RuntimeError(f"{child_name} exited with {child.returncode}; see its log")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=1) as response,  # noqa: S310 - loopback
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{name} not healthy at {url} after {timeout}s")


def _post_json(url: str, timeout: float) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 - loopback URL built here
        url, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
        answer: dict[str, object] = json.loads(response.read() or b"{}")
        return answer


def start(stack: Stack) -> dict[str, str]:
    """Bring the suite up; returns the URLs to print."""
    data_dir = Path(env_str("DATA_DIR", str(REPO_ROOT / ".data"))).resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    database_url = env_optional("DATABASE_URL")
    if database_url is None:
        pg_dir = data_dir / "postgres"
        stop_stale_server(pg_dir / "pgdata" / "postmaster.pid")
        stack.postgres = EmbeddedPostgres(pg_dir, env_int("EMBEDDED_PG_PORT", 54329))
        stack.postgres.start()
        database_url = stack.postgres.create_database("billing")
    database_url = sqlalchemy_url(database_url)
    nats_url = env_optional("NATS_URL")
    if nats_url is None:
        nats_dir = data_dir / "nats"
        stop_stale_server(nats_dir / "nats.pid")
        stack.nats = EmbeddedNats(nats_dir, env_int("EMBEDDED_NATS_PORT", 4229))
        stack.nats.start()
        nats_url = stack.nats.url
    upgrade_to_head(database_url)

    ingest_http = env_int("INGEST_HTTP_PORT", 8090)
    sim_port = env_int("STRIPE_SIMULATOR_PORT", 12111)
    webhook_secrets = env_optional("STRIPE_WEBHOOK_SECRETS") or "whsec_dev_" + secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "NATS_URL": nats_url,
            "STRIPE_WEBHOOK_SECRETS": webhook_secrets,
            "STRIPE_API_BASE": env_str("STRIPE_API_BASE", f"http://127.0.0.1:{sim_port}"),
            "STRIPE_API_KEY": env_str("STRIPE_API_KEY", "sk_test_simulator"),
            "PYTHONUNBUFFERED": "1",
            # Demo conversion rates for the blended totals (configuration, not code).
            "FX_RATES": env_str("FX_RATES", DEMO_FX_RATES),
        }
    )
    urls: dict[str, str] = {}

    _spawn(stack, "ingest", ["-m", "services.ingest"], env, log_dir)
    _wait_healthy("ingest", f"http://127.0.0.1:{env_int('INGEST_ADMIN_PORT', 9091)}/healthz", stack)
    urls["webhooks"] = f"http://127.0.0.1:{ingest_http}/webhooks/stripe"
    urls["ingest_grpc"] = f"127.0.0.1:{env_int('INGEST_GRPC_PORT', 50051)}"

    if (REPO_ROOT / "services" / "ledger" / "__main__.py").exists():
        _spawn(stack, "ledger", ["-m", "services.ledger"], env, log_dir)
        _wait_healthy(
            "ledger", f"http://127.0.0.1:{env_int('LEDGER_ADMIN_PORT', 9092)}/healthz", stack
        )
        urls["ledger_grpc"] = f"127.0.0.1:{env_int('LEDGER_GRPC_PORT', 50052)}"

    sim_env = dict(env)
    sim_env["SIM_WEBHOOK_URL"] = urls["webhooks"]
    sim_env.setdefault("SIM_START_DATE", demo_start_date(data_dir))
    _spawn(
        stack,
        "stripe_simulator",
        ["-m", "services.stripe_simulator", "--port", str(sim_port)],
        sim_env,
        log_dir,
    )
    wait_for_port(sim_port, 120, stack.children[-1][1])
    urls["stripe_simulator"] = f"http://127.0.0.1:{sim_port}"

    if env_str("DEMO_DATA", "1") != "0":
        report = _post_json(f"http://127.0.0.1:{sim_port}/_sim/deliver", timeout=600)
        urls["demo_events"] = str(report.get("delivered", report))
    return urls


def main() -> int:
    stack = Stack()
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        urls = start(stack)
        print("ready: " + " ".join(f"{k}={v}" for k, v in urls.items()), flush=True)
        while True:
            for name, child in stack.children:
                if child.poll() is not None:
                    print(f"{name} exited with {child.returncode}; stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
