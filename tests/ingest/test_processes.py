"""``INGEST_PROCESSES=2``: two ingest processes behind one port (issue 12, goal 5).

Runs the real entry point (``python -m services.ingest``) as a process group on real
PostgreSQL and NATS: the kernel spreads connections over both copies, every webhook is archived
once, SIGTERM stops the group, and a copy that dies takes the group down (so a supervisor
restarts it whole).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest

from services.common.config import libpq_url
from services.devstack.embedded import EmbeddedNats, free_port, wait_for_port
from tests.ingest.conftest import SECRET, WebhookClient, event_body

REPO_ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(c) for c in text.split()]


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is ``port``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found


class Group:
    def __init__(self, process: subprocess.Popen[bytes], http_port: int, admin_port: int) -> None:
        self.process = process
        self.http_port = http_port
        self.admin_port = admin_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/webhooks/stripe"


@pytest.fixture
def group(database_url: str, nats: EmbeddedNats, tmp_path: Path) -> Iterator[Group]:
    http_port, grpc_port, admin_port = free_port(), free_port(), free_port()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        NATS_URL=nats.url,
        STRIPE_WEBHOOK_SECRETS=SECRET,
        INGEST_HOST="127.0.0.1",
        INGEST_HTTP_PORT=str(http_port),
        INGEST_GRPC_PORT=str(grpc_port),
        INGEST_ADMIN_PORT=str(admin_port),
        INGEST_PROCESSES="2",
        LOG_LEVEL="WARNING",
    )
    with open(tmp_path / "ingest.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.ingest"],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=log,
        )
    try:
        wait_for_port(http_port, 120, process)
        # Both copies listen before the test starts (the port answers as soon as one does).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            copies = _children(process.pid)
            if len(copies) == 2 and all(
                _listening(pid, http_port) for pid in copies
            ):
                break
            time.sleep(0.2)
        yield Group(process, http_port, admin_port)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _listening(pid: int, port: int) -> bool:
    listening: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                listening.add(fields[9])
    return bool(listening & _socket_inodes(pid))


async def _post_over_32_connections(group: Group, prefix: str, count: int) -> list[int]:
    """Post ``count`` webhooks (all must answer 200) over 32 keep-alive connections; returns
    how many of the connections, still open afterwards, each copy holds."""
    copies = _children(group.process.pid)
    connector = aiohttp.TCPConnector(limit=32, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = WebhookClient(session, group.url)
        queue: asyncio.Queue[str] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(f"{prefix}_{i:04d}")

        async def worker() -> None:
            while not queue.empty():
                status, answer = await client.post(event_body(queue.get_nowait()))
                assert status == 200, answer

        await asyncio.gather(*(worker() for _ in range(32)))
        established = _established_inodes(group.http_port)
        return [len(_socket_inodes(pid) & established) for pid in copies]


async def test_two_processes_share_the_webhook_port_and_archive_every_event(
    group: Group, database_url: str
) -> None:
    copies = _children(group.process.pid)
    assert len(copies) == 2
    per_copy = await _post_over_32_connections(group, "evt_group", 200)
    assert sum(per_copy) >= 16, per_copy
    assert all(n > 0 for n in per_copy), per_copy  # the kernel gave both copies connections
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM ingest.stripe_events"
            " WHERE event_id LIKE 'evt_group_%%'"
        ).fetchone()
    assert row == (200, 200)

    group.process.send_signal(signal.SIGTERM)
    assert group.process.wait(60) == 0
    for pid in copies:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_copy_that_dies_stops_the_group(group: Group) -> None:
    first, second = _children(group.process.pid)
    os.kill(first, signal.SIGKILL)
    # The parent stops the other copy and reports the failure to whoever supervises it.
    assert group.process.wait(60) != 0
    deadline = time.monotonic() + 30
    while Path(f"/proc/{second}").exists() and not _is_zombie(second):
        assert time.monotonic() < deadline, "the surviving copy kept running"
        time.sleep(0.1)


def _webhooks_counted(text: str) -> float:
    """``ingest_webhooks_total`` summed over its outcomes, from one scrape."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ingest_webhooks_total{")
    )


async def test_every_scrape_of_the_shared_admin_port_counts_both_copies(group: Group) -> None:
    # Without the shared metric files each scrape read the copy the kernel picked, so the
    # counter moved between the copies' own counts (e.g. 97 and 103 for 200 webhooks).
    per_copy = await _post_over_32_connections(group, "evt_metrics", 200)
    assert all(n > 0 for n in per_copy), per_copy
    scrapes = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as admin:
        for _ in range(8):  # new connections: the kernel spreads them over both copies
            async with admin.get(f"http://127.0.0.1:{group.admin_port}/metrics") as response:
                assert response.status == 200
                scrapes.append(_webhooks_counted(await response.text()))
    assert scrapes == [200.0] * 8
