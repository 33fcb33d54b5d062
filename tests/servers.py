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


@contextmanager
def postgres_server() -> Iterator[PostgresHandle]:
    source = postgres_source()
    print(f"\ntests: PostgreSQL from {source}", file=sys.stderr)
    if source == "testcontainers":
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, username="test", password="test") as container:
            host_port = f"{container.get_container_host_ip()}:{container.get_exposed_port(5432)}"
            yield ContainerPostgres(f"postgresql://test:test@{host_port}/test", host_port)
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
def nats_server() -> Iterator[EmbeddedNats]:
    """A NATS server we control (tests stop and restart it), always the embedded binary."""
    root = Path(tempfile.mkdtemp(prefix="billing-test-nats-"))
    server = EmbeddedNats(root, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
