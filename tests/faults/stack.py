"""The whole suite as `make run` starts it (a real supervisor, real processes), for the fault
tests: kill -9 a service, kill NATS, stop PostgreSQL, and watch what the clients see."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg

from services.devstack.embedded import free_port
from services.stripe_simulator.signing import sign

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_faults_suite"
PORT_VARIABLES = (
    "EMBEDDED_PG_PORT",
    "EMBEDDED_NATS_PORT",
    "INGEST_HTTP_PORT",
    "INGEST_GRPC_PORT",
    "INGEST_ADMIN_PORT",
    "LEDGER_GRPC_PORT",
    "LEDGER_ADMIN_PORT",
    "DRIFT_GRPC_PORT",
    "DRIFT_ADMIN_PORT",
    "GATEWAY_PORT",
    "GATEWAY_ADMIN_PORT",
    "STRIPE_SIMULATOR_PORT",
)
# A bound on waiting for the stack, so a regression fails instead of hanging the suite.
HANG_GUARD = 300.0


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    data_dir: Path
    ports: dict[str, int]
    stderr_path: Path
    ready_line: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['INGEST_HTTP_PORT']}/webhooks/stripe"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports['EMBEDDED_PG_PORT']}/billing"

    def port(self, name: str) -> int:
        return self.ports[name]

    def supervisor_log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def diagnosis(self) -> str:
        """The supervisor's lines and the tails of the logs, for a failing assertion."""
        parts = [self.supervisor_log()]
        for log in (self.data_dir / "postgres" / "postgres.log", *self.data_dir.glob("logs/*")):
            if log.is_file():
                parts.append(f"--- {log.name}\n" + log.read_text(errors="replace")[-1500:])
        return "\n".join(parts)

    def child_pid(self, module: str) -> int | None:
        """The pid of the stack's child running ``python -m <module>`` (only our own)."""
        for pid, cmdline in children_of(self.process.pid):
            if module.encode() in cmdline:
                return pid
        return None

    def freeze_postgres(self) -> list[int]:
        """SIGSTOP PostgreSQL: the postmaster first (no new backends), then every backend
        (each runs in its own process group, so one killpg is not enough)."""
        postmaster = self.postgres_pid()
        os.kill(postmaster, signal.SIGSTOP)
        frozen = [postmaster]
        for pid, _ in children_of(postmaster):
            os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)
        return frozen

    def postgres_pid(self) -> int:
        pid_file = self.data_dir / "postgres" / "pgdata" / "postmaster.pid"
        return int(pid_file.read_text().splitlines()[0])

    def nats_pid(self) -> int:
        return int((self.data_dir / "nats" / "nats.pid").read_text().strip())

    def archived_ids(self) -> set[str]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute("SELECT event_id FROM ingest.stripe_events").fetchall()
        return {row[0] for row in rows}

    def scalar(self, sql: str) -> int:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
        assert row is not None
        return int(row[0])


def children_of(parent: int) -> list[tuple[int, list[bytes]]]:
    """(pid, argv) of the direct children of ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            found.append((int(entry.name), cmdline))
    return found


def thaw(pids: list[int]) -> None:
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def start_stack(root: Path, extra_env: dict[str, str] | None = None) -> Stack:
    ports = {name: free_port() for name in PORT_VARIABLES}
    env = dict(os.environ)
    env.update({name: str(port) for name, port in ports.items()})
    env.update(
        {
            "DATA_DIR": str(root),
            "DEMO_DATA": "0",
            "STRIPE_WEBHOOK_SECRETS": SECRET,
            "SIM_SEED": "7",
            "SIM_TENANTS": "6",
            "SIM_MONTHS": "3",
            "LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
    )
    env.pop("DATABASE_URL", None)
    env.pop("NATS_URL", None)
    root.mkdir(parents=True, exist_ok=True)
    stderr_path = root / "devstack.stderr"
    process = subprocess.Popen(
        [sys.executable, "-m", "services.devstack"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("wb"),
        start_new_session=True,
    )
    stack = Stack(process, root, ports, stderr_path)
    ready = threading.Event()

    def read_stdout() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace").strip()
            stack.lines.append(line)
            if line.startswith("ready:"):
                stack.ready_line = line
                ready.set()

    threading.Thread(target=read_stdout, daemon=True).start()
    deadline = time.monotonic() + HANG_GUARD
    while not ready.wait(0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_stack(stack)
            raise RuntimeError(f"make run did not come up:\n{stack.supervisor_log()[-3000:]}")
    return stack


def stop_stack(stack: Stack) -> None:
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGTERM)
        try:
            stack.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(stack.process.pid, signal.SIGKILL)
            stack.process.wait(10)


def event_body(event_id: str) -> bytes:
    return (
        b'{"id":"%s","object":"event","api_version":"2020-08-27","created":%d,'
        b'"livemode":false,"pending_webhooks":1,"type":"customer.created",'
        b'"data":{"object":{"id":"cus_%s","object":"customer","metadata":{}}}}'
        % (event_id.encode(), int(time.time()), event_id.encode())
    )


@dataclass
class LoadReport:
    acked: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


async def send_until_acked(
    url: str,
    event_ids: Iterable[str],
    report: LoadReport,
    *,
    concurrency: int = 8,
    pause: float = 0.1,
    max_attempts: int | None = None,
    retry_for: float = HANG_GUARD,
) -> None:
    """Deliver each event like Stripe does: retry until it is acknowledged (Stripe retries
    for days; here for ``retry_for`` seconds at most, or ``max_attempts`` per event)."""
    deadline = time.monotonic() + retry_for
    queue: asyncio.Queue[str] = asyncio.Queue()
    for event_id in event_ids:
        queue.put_nowait(event_id)
    timeout = aiohttp.ClientTimeout(total=10)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            event_id = queue.get_nowait()
            body = event_body(event_id)
            attempts = 0
            while time.monotonic() < deadline and (max_attempts is None or attempts < max_attempts):
                attempts += 1
                try:
                    headers = {"Stripe-Signature": sign(body, SECRET, int(time.time()))}
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        report.statuses[response.status] = (
                            report.statuses.get(response.status, 0) + 1
                        )
                        if response.status == 200:
                            report.acked.add(event_id)
                            break
                except (aiohttp.ClientError, TimeoutError):
                    report.errors += 1
                await asyncio.sleep(pause)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
