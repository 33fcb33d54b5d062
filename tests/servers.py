"""Real PostgreSQL and NATS servers for the tests.

PostgreSQL comes from ``testcontainers`` when a Docker engine answers AND the image it needs
(``TESTS_POSTGRES_IMAGE``, default ``postgres:16``) is already present locally; otherwise from
the embedded server from PyPI, exactly as `make run` uses it. An engine without a reachable
registry (CI here) must never make the suite try to pull: testcontainers' Ryuk reaper (another
image) is disabled too, since every container is stopped by its own context manager. The
choice is printed once, so a run says which PostgreSQL it tested against. NATS is always the
embedded binary (tests stop and restart it). Either way the tests talk to real servers over TCP.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.devstack.embedded import EmbeddedNats, EmbeddedPostgres, free_port


class PostgresHandle(Protocol):
    def create_database(self, name: str) -> str: ...


POSTGRES_IMAGE = os.environ.get("TESTS_POSTGRES_IMAGE", "postgres:16")


def docker_available() -> bool:
    """True when a Docker engine answers (not merely when the client is installed)."""
    if os.environ.get("TESTS_NO_DOCKER"):
        return False
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:  # any failure to reach an engine means "no engine": fall back
        return False
    return True


def local_image_present(image: str) -> bool:
    """True when ``image`` is already in the local engine's store (no pull is attempted)."""
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound

        docker.from_env(timeout=2).images.get(image)
    except ImportError:
        return False
    except (ImageNotFound, DockerException):
        return False
    return True


def postgres_source() -> str:
    """``"testcontainers"`` or ``"embedded"``, by the rule of the module docstring."""
    if docker_available() and local_image_present(POSTGRES_IMAGE):
        return "testcontainers"
    return "embedded"


@dataclass
class ContainerPostgres:
    """Postgres from testcontainers, offering the same create_database as the embedded one."""

    admin_url: str
    host_port: str

    def create_database(self, name: str) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql+psycopg://test:test@{self.host_port}/{name}"


def _wait_until_connectable(url: str, seconds: float = 90.0) -> None:
    """Block until PostgreSQL accepts ``url`` (the image initialises its cluster first)."""
    import psycopg

    deadline = time.monotonic() + seconds
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextmanager
def postgres_server() -> Iterator[PostgresHandle]:
    source = postgres_source()
    print(f"\ntests: PostgreSQL from {source}", file=sys.stderr)
    os.environ["TESTS_POSTGRES_SOURCE"] = source
    if source == "testcontainers":
        # The container shares the host's network (the only container networking some
        # machines here allow) and listens on a free port given as PGPORT, which both the
        # public image and deploy/docker/local/postgres.Dockerfile honour.
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        from testcontainers.core.container import DockerContainer

        port = free_port()
        container = (
            DockerContainer(POSTGRES_IMAGE)
            .with_env("POSTGRES_USER", "test")
            .with_env("POSTGRES_PASSWORD", "test")
            .with_env("POSTGRES_DB", "test")
            .with_env("PGPORT", str(port))
            .with_kwargs(network_mode="host")
        )
        with container:
            admin_url = f"postgresql://test:test@127.0.0.1:{port}/test"
            _wait_until_connectable(admin_url)
            yield ContainerPostgres(admin_url, f"127.0.0.1:{port}")
        return
    root = Path(tempfile.mkdtemp(prefix="billing-test-pg-"))
    server = EmbeddedPostgres(root, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def nats_server(config: str = "") -> Iterator[EmbeddedNats]:
    """A NATS server we control (tests stop and restart it, or give it a ``config``), always
    the embedded binary."""
    root = Path(tempfile.mkdtemp(prefix="billing-test-nats-"))
    server = EmbeddedNats(root, free_port(), config)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
