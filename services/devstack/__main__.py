"""``make run``: the whole suite on one machine, with embedded PostgreSQL and NATS.

Starts (in order) PostgreSQL and NATS unless ``DATABASE_URL`` / ``NATS_URL`` point elsewhere,
applies the migrations, starts every service and the Stripe simulator, loads demo data through
the real webhook path (``DEMO_DATA=0`` skips it), prints one ``ready:`` line, and on Ctrl-C or
SIGTERM stops everything in reverse order. Data lives in ``DATA_DIR`` (default ``.data``).

Every port binds to 127.0.0.1 unless its ``*_HOST`` variable says otherwise; the gRPC tokens
of the run are in ``$DATA_DIR/grpc-tokens.env``. A process that dies (a service, or the
embedded PostgreSQL or NATS) is restarted by the supervisor with backoff
(:mod:`services.devstack.supervisor`); only Ctrl-C / SIGTERM stops the stack.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from services.common.config import env_int, env_optional, env_str, sqlalchemy_url
from services.common.migrate import upgrade_to_head
from services.devstack import demo_directory, first_install
from services.devstack.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    die_with_parent,
    wait_for_port,
)
from services.devstack.stale import stop_stale_server
from services.devstack.supervisor import Supervised, Supervisor

REPO_ROOT = Path(__file__).resolve().parents[2]
# Illustrative rates for the demo only; production sets FX_RATES from its treasury source.
DEMO_FX_RATES = "EUR=1.08,JPY=0.0067"


def _port(variable: str, default: int) -> int:
    return env_int(variable, default)


@dataclass(frozen=True)
class ServiceSpec:
    """One process of `make run`. Adding a service is adding one entry to :data:`SERVICES`.

    ``health``: (admin-port variable, default) whose ``/healthz`` must answer 200 before the
    next process starts; ``port``: (variable, default) of a port that must accept instead.
    ``args`` and ``env`` get the data folder; ``urls`` are printed on the ``ready:`` line.
    """

    name: str
    module: str
    health: tuple[str, int] | None = None
    port: tuple[str, int] | None = None
    args: Callable[[], list[str]] = list
    env: Callable[[Path], dict[str, str]] = lambda _data_dir: {}
    urls: Callable[[], dict[str, str]] = dict


def _webhook_url() -> str:
    return f"http://127.0.0.1:{_port('INGEST_HTTP_PORT', 8090)}/webhooks/stripe"


# Written once (mode 0600) by the gateway when it creates the first admin; printed on the
# ready line and deleted, so the password is shown exactly once and only stored hashed.
GATEWAY_FIRST_ADMIN = "gateway-first-admin"


def _gateway_urls() -> dict[str, str]:
    urls = {"backoffice": f"http://127.0.0.1:{_port('GATEWAY_PORT', 8080)}/"}
    first = Path(env_str("DATA_DIR", str(REPO_ROOT / ".data"))).resolve() / GATEWAY_FIRST_ADMIN
    if first.exists():
        username, password = first.read_text().split()
        first.unlink()
        print(f"back-office: first operator {username!r}, password {password} (shown once; "
              "stored hashed)", flush=True)
    else:
        print("back-office: operators kept from an earlier run; a new password: "
              "python -m services.backoffice_gateway operators reset-password admin", flush=True)
    return urls


def _simulator_url() -> str:
    return f"http://127.0.0.1:{_port('STRIPE_SIMULATOR_PORT', 12111)}"


SERVICES: list[ServiceSpec] = [
    ServiceSpec(
        "ingest",
        "services.ingest",
        health=("INGEST_ADMIN_PORT", 9091),
        urls=lambda: {
            "webhooks": _webhook_url(),
            "ingest_grpc": f"127.0.0.1:{_port('INGEST_GRPC_PORT', 50051)}",
        },
    ),
    ServiceSpec(
        "ledger",
        "services.ledger",
        health=("LEDGER_ADMIN_PORT", 9092),
        urls=lambda: {"ledger_grpc": f"127.0.0.1:{_port('LEDGER_GRPC_PORT', 50052)}"},
    ),
    ServiceSpec(
        "stripe_simulator",
        "services.stripe_simulator",
        port=("STRIPE_SIMULATOR_PORT", 12111),
        args=lambda: ["--port", str(_port("STRIPE_SIMULATOR_PORT", 12111))],
        env=lambda data_dir: {
            "SIM_WEBHOOK_URL": _webhook_url(),
            "SIM_START_DATE": env_optional("SIM_START_DATE") or demo_start_date(data_dir),
            **demo_world_env(),
        },
        urls=lambda: {
            "stripe_simulator": f"http://127.0.0.1:{_port('STRIPE_SIMULATOR_PORT', 12111)}"
        },
    ),
    # After the simulator (Stripe, here), before the gateway (which calls it).
    ServiceSpec(
        "drift",
        "services.drift",
        health=("DRIFT_ADMIN_PORT", 9093),
        urls=lambda: {"drift_grpc": f"127.0.0.1:{_port('DRIFT_GRPC_PORT', 50053)}"},
    ),
    ServiceSpec(
        "backoffice_gateway",
        "services.backoffice_gateway",
        port=("GATEWAY_PORT", 8080),
        args=lambda: ["serve"],
        env=lambda data_dir: {"GATEWAY_BOOTSTRAP_FILE": str(data_dir / GATEWAY_FIRST_ADMIN)},
        urls=lambda: _gateway_urls(),
    ),
]
# Every port of `make run` listens on loopback unless its *_HOST variable says otherwise.
HOST_VARIABLES = ("INGEST_HOST", "LEDGER_HOST", "DRIFT_HOST", "GATEWAY_HOST")


@dataclass
class Child:
    """A running service process, restartable by the supervisor."""

    spec: ServiceSpec
    env: dict[str, str]
    log_dir: Path
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_dir / f"{self.spec.name}.log", "ab")  # noqa: SIM115 - child owns it
        env = {**self.env, **self.spec.env(self.data_dir)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.spec.module, *self.spec.args()],
            env=env,
            stdout=log,
            stderr=log,
            cwd=REPO_ROOT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.close()
        if self.spec.health is not None:
            variable, default = self.spec.health
            _wait_healthy(self, f"http://127.0.0.1:{_port(variable, default)}/healthz")
        if self.spec.port is not None:
            wait_for_port(_port(*self.spec.port), 120, self.process)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()


@dataclass
class Stack:
    """Everything `make run` started, so it can be stopped in reverse order."""

    postgres: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None
    children: list[Child] = field(default_factory=list)
    supervisor: Supervisor = field(default_factory=Supervisor)

    def stop(self) -> None:
        running = [c.process for c in reversed(self.children) if c.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                child.process.wait(15)
            except subprocess.TimeoutExpired:
                print(f"{child.spec.name} did not stop in 15 s, killing it", file=sys.stderr)
                child.process.kill()
                child.process.wait(5)
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


def demo_world_env() -> dict[str, str]:
    """The demo's business (issue 9: "looks like a real business on every period"): enough
    customers signing up all along the history that every week of the last 90 days has
    signups, plan changes, cancellations, payments and refunds, and a few webhooks lost on the
    way (seeded, the same every run) so some accounts show drift. Each is overridable.
    Only for the demo: with ``DEMO_DATA=0`` the simulator keeps its own defaults (the fault
    tests deliver its world themselves and expect every webhook to arrive)."""
    if env_str("DEMO_DATA", "1") == "0":
        return {}
    return {
        "SIM_TENANTS": env_str("SIM_TENANTS", "150"),
        "SIM_SIGNUP_MONTHS": env_str("SIM_SIGNUP_MONTHS", str(env_int("SIM_MONTHS", 6))),
        "SIM_DROP_RATE": env_str("SIM_DROP_RATE", "0.002"),
        "SIM_FAULT_SEED": env_str("SIM_FAULT_SEED", "9"),
    }


def _wait_healthy(child: Child, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = child.exit_code()
        if code is not None:
            raise RuntimeError(f"{child.spec.name} exited with {code}; see its log")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=1) as response,  # noqa: S310 - loopback
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{child.spec.name} not healthy at {url} after {timeout}s")


def _post_json(url: str, timeout: float) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 - loopback URL built here
        url, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
        answer: dict[str, object] = json.loads(response.read() or b"{}")
        return answer


TOKENS_FILE = "grpc-tokens.env"


def grpc_tokens(data_dir: Path) -> dict[str, str]:
    """The gRPC credentials of this run: an admin and a read token (fresh unless set in the
    environment), given to every service; clients carry the admin token.

    Written to ``$DATA_DIR/grpc-tokens.env`` (mode 0600), in a form a shell can source.
    """
    admin = env_optional("GRPC_ADMIN_TOKENS") or secrets.token_hex(32)
    read = env_optional("GRPC_READ_TOKENS") or secrets.token_hex(32)
    tokens = {
        "GRPC_ADMIN_TOKENS": admin,
        "GRPC_READ_TOKENS": read,
        "GRPC_CLIENT_TOKEN": env_optional("GRPC_CLIENT_TOKEN") or admin.split(",")[0].strip(),
    }
    path = data_dir / TOKENS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # also when the file existed with wider permissions
        out.write("# gRPC bearer tokens of the running `make run` (new at every start).\n")
        out.write("# Use: . .data/grpc-tokens.env (see README, 'gRPC credentials').\n")
        out.writelines(f"{key}={value}\n" for key, value in tokens.items())
    return tokens


def start(stack: Stack) -> dict[str, str]:
    """Bring the suite up; returns the URLs to print."""
    data_dir = Path(env_str("DATA_DIR", str(REPO_ROOT / ".data"))).resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    database_url = env_optional("DATABASE_URL")
    if database_url is None:
        pg_dir = data_dir / "postgres"
        stop_stale_server(pg_dir / "pgdata" / "postmaster.pid")
        postgres = stack.postgres = EmbeddedPostgres(pg_dir, env_int("EMBEDDED_PG_PORT", 54329))
        postgres.start()
        stack.supervisor.add(Supervised("postgres", postgres.start, _exit_code(postgres)))
        database_url = postgres.create_database("billing")
    database_url = sqlalchemy_url(database_url)
    nats_url = env_optional("NATS_URL")
    if nats_url is None:
        nats_dir = data_dir / "nats"
        stop_stale_server(nats_dir / "nats.pid")
        nats = stack.nats = EmbeddedNats(nats_dir, env_int("EMBEDDED_NATS_PORT", 4229))
        nats.start()
        stack.supervisor.add(Supervised("nats", nats.start, _exit_code(nats)))
        nats_url = nats.url
    upgrade_to_head(database_url)

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
            **grpc_tokens(data_dir),
        }
    )
    for variable in HOST_VARIABLES:
        env[variable] = env_str(variable, "127.0.0.1")
    urls: dict[str, str] = {}
    for spec in SERVICES:
        child = Child(spec, env, log_dir, data_dir)
        stack.children.append(child)
        child.start()
        stack.supervisor.add(Supervised(spec.name, child.start, child.exit_code))
        urls.update(spec.urls())

    if not first_install.uses_simulator(env["STRIPE_API_BASE"], _simulator_url()):
        # A real Stripe account: never the demo's events; the first-install import on an
        # empty ledger (issue 8, 3b).
        urls["demo_events"] = "skipped (STRIPE_API_BASE is not the simulator)"
        if first_install.ledger_is_empty(database_url):
            print("first install: importing the Stripe account's baseline...", flush=True)
            urls["baseline_import"] = first_install.import_baseline(
                f"127.0.0.1:{_port('DRIFT_GRPC_PORT', 50053)}", env.get("GRPC_CLIENT_TOKEN")
            )
    elif env_str("DEMO_DATA", "1") != "0":
        report = _post_json(f"{_simulator_url()}/_sim/deliver", timeout=600)
        urls["demo_events"] = str(report.get("delivered", report))
        urls["demo_directory_users"] = str(
            demo_directory.seed(
                f"127.0.0.1:{_port('LEDGER_GRPC_PORT', 50052)}", env.get("GRPC_CLIENT_TOKEN")
            )
        )
    urls["grpc_tokens"] = str(data_dir / TOKENS_FILE)
    return urls


def _exit_code(server: EmbeddedPostgres | EmbeddedNats) -> Callable[[], int | None]:
    def code() -> int | None:
        return None if server.process is None else server.process.poll()

    return code


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
            stack.supervisor.tick()
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
