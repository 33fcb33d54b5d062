"""Where a replay's CPU goes, process by process (issue 12, sixth pass).

``ledger_bench`` times the replay as one gRPC call; this bench runs the same stack (a
simulator world COPYed into the archive, ``services.ingest`` and ``services.ledger`` as real
processes, one ``ReplayArchive`` call, then the idempotent second one) and reads, from
``/proc``, the CPU every process spent during each replay: the ingest process (streams the
archive), the ledger process (reader, writer), its projection workers, and PostgreSQL's
backends - each backend attributed to the service whose socket it serves (matched by the
client port in the backend's title), the rest (autovacuum, WAL writer, checkpointer, exited
backends) summed apart. Why: on two cores every microsecond of any of these processes is
taken from the replay; only the whole table says which one to cut.

With ``--py-spy DIR`` the ledger process and its workers are sampled with py-spy during the
first replay (flame graphs as speedscope JSON in DIR).

    .venv/bin/python -m bench.ledger_replay_profile --tenants 500 --months 12 --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.ledger_bench import (
    ReplayPorts,
    load_archive,
    peak_rss_mib,
    replay,
    replay_env,
    settle_archive,
    spawn,
    wait_healthy,
)
from bench.stack import bench_stack
from services.stripe_simulator import WorldConfig

_TICK = os.sysconf("SC_CLK_TCK")
_BACKEND_PORT = re.compile(r"\(\s*(\d+)\)")


def _stat(pid: int) -> tuple[float, float] | None:
    """(own CPU seconds, CPU seconds of reaped children) of one process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime) / _TICK, (cutime + cstime) / _TICK


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in _children(stack.pop()):
            found.append(child)
            stack.append(child)
    return found


def _socket_ports(pids: list[int]) -> set[int]:
    """Local TCP ports of the sockets the processes hold (IPv4 and IPv6)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass
class Snapshot:
    """CPU seconds by process label at one instant."""

    cpu: dict[str, float]


def snapshot(services: dict[str, int], postgres: int) -> Snapshot:
    """CPU by label: each service, its children (``<name> workers``), and PostgreSQL split by
    the service whose connection a backend serves."""
    cpu: dict[str, float] = defaultdict(float)
    for name, pid in services.items():
        own = _stat(pid)
        if own is not None:
            cpu[name] += own[0]
            cpu[f"{name} workers"] += own[1]
        for child in _descendants(pid):
            stat = _stat(child)
            if stat is not None:
                cpu[f"{name} workers"] += stat[0] + stat[1]
    ports = {name: _socket_ports([pid, *_descendants(pid)]) for name, pid in services.items()}
    main = _stat(postgres)
    if main is not None:
        cpu["postgres: postmaster + exited"] += main[0] + main[1]
    for child in _children(postgres):
        stat = _stat(child)
        if stat is None:
            continue
        try:
            title = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        label = "postgres: " + title.replace("\x00", " ").strip().split(" ")[1]
        match = _BACKEND_PORT.search(title)
        if match:
            port = int(match.group(1))
            owner = next((n for n, p in ports.items() if port in p), "other client")
            label = f"postgres: backend of {owner}"
        elif "autovacuum" in title:
            label = "postgres: autovacuum"
        else:
            label = "postgres: background"
        cpu[label] += stat[0] + stat[1]
    return Snapshot(dict(cpu))


def report(title: str, events: int, before: Snapshot, after: Snapshot, wall: float) -> None:
    """CPU per event by label, between two snapshots."""
    labels = sorted(set(before.cpu) | set(after.cpu))
    rows = [(lab, after.cpu.get(lab, 0.0) - before.cpu.get(lab, 0.0)) for lab in labels]
    total = sum(v for _, v in rows)
    print(
        f"\n{title}: {events} events in {wall:.1f}s = {events / wall:,.0f} events/s,"
        f" wall {wall / events * 1e6:.1f} us/event, CPU {total / events * 1e6:.1f} us/event"
        f" ({total / wall:.2f} cores busy), load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'process':40s} {'CPU s':>8s} {'us/event':>9s} {'share':>6s}")
    for label, seconds in sorted(rows, key=lambda r: -r[1]):
        if seconds <= 0:
            continue
        print(
            f"{label:40s} {seconds:8.2f} {seconds / events * 1e6:9.1f}"
            f" {seconds / total * 100 if total else 0:5.1f}%"
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ledger_replay_profile", description=__doc__)
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--py-spy", type=Path, default=None, help="folder for py-spy profiles")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    config = WorldConfig(seed=args.seed, tenants=args.tenants, months=args.months)
    with bench_stack() as stack:
        assert stack.postgres_pid is not None
        logs = Path(os.environ.get("BENCH_LOG_DIR", tempfile.gettempdir()))
        archived = load_archive(stack.database_url, config, args.max_events)
        settled = settle_archive(stack.database_url)
        print(f"archive: {archived} events, VACUUM (ANALYZE) {settled:.1f}s")
        ports = ReplayPorts.free()
        env = replay_env(stack, ports, args.batch_size, args.workers)
        ingest = spawn("services.ingest", env, logs / "bench-replay-profile-ingest.log")
        ledger: subprocess.Popen[bytes] | None = None
        spies: list[subprocess.Popen[bytes]] = []
        try:
            wait_healthy(f"http://127.0.0.1:{ports.ingest_admin}/healthz", ingest)
            ledger = spawn("services.ledger", env, logs / "bench-replay-profile-ledger.log")
            wait_healthy(f"http://127.0.0.1:{ports.ledger_admin}/healthz", ledger)
            services = {"ingest": ingest.pid, "ledger": ledger.pid}
            for name in ("first replay", "second replay"):
                if args.py_spy is not None and name == "first replay":
                    spies = _start_spies(args.py_spy, {"ledger": ledger.pid, "ingest": ingest.pid})
                before = snapshot(services, stack.postgres_pid)
                started = time.perf_counter()
                answer = asyncio.run(replay(ports.ledger_grpc))
                wall = time.perf_counter() - started
                after = snapshot(services, stack.postgres_pid)
                for spy in spies:
                    spy.send_signal(2)  # SIGINT: py-spy writes its profile and exits
                for spy in spies:
                    spy.wait(60)
                spies = []
                report(name, answer.examined, before, after, wall)
                print(
                    f"(the service's own timing: {answer.examined / answer.seconds:,.0f}"
                    f" events/s, applied {answer.applied})"
                )
            print(
                "peak RSS (VmHWM): ledger "
                + ", ".join(f"{mib:.0f} MiB" for mib in peak_rss_mib(ledger.pid))
            )
        finally:
            for spy in spies:
                spy.kill()
            for child in (ledger, ingest):
                if child is not None:
                    child.terminate()
                    try:
                        child.wait(20)
                    except subprocess.TimeoutExpired:
                        child.kill()


def _start_spies(folder: Path, services: dict[str, int]) -> list[subprocess.Popen[bytes]]:
    """py-spy on each service, its workers included (``--subprocesses``), as collapsed
    stacks (``<name>.txt``; one line per stack with its sample count)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(folder / f"{name}.txt"),
                "--nonblocking",
                "--idle",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in services.items()
    ]


if __name__ == "__main__":
    main(sys.argv[1:])
