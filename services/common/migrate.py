"""Apply the Alembic migrations programmatically, or wait until someone else has.

``upgrade_to_head`` is used by `make run` and the test fixtures. ``wait_for_head`` is what a
service's init container runs in Kubernetes (``python -m services.common.migrate wait``): the
migration Job and the services start together, and a service must not start against an older
schema, so it waits until the database's Alembic revision is the head of the scripts shipped
in the same image.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from argparse import Namespace
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from services.common.config import database_url, sqlalchemy_url

REPO_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str) -> Config:
    """The Alembic configuration: ``$ALEMBIC_CONFIG`` (the image sets it), else the repo's."""
    ini = Path(os.environ.get("ALEMBIC_CONFIG") or REPO_ROOT / "alembic.ini")
    config = Config(str(ini))
    config.set_main_option("script_location", str(ini.parent / "migrations"))
    # migrations/env.py reads the URL like `alembic -x url=...` passes it.
    config.cmd_opts = Namespace(x=[f"url={url}"])
    return config


def upgrade_to_head(url: str) -> None:
    """Bring the database at ``url`` to the newest schema; a no-op when already there."""
    command.upgrade(alembic_config(url), "head")


def script_head(url: str) -> str:
    """The newest revision of the migration scripts (one linear history, so one head)."""
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if head is None:
        raise RuntimeError("no migration scripts found")
    return head


def current_revision(url: str) -> str | None:
    """The database's revision, or None before the first migration (or while unreachable)."""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):
        return None
    finally:
        engine.dispose()


def wait_for_head(url: str, timeout: float, interval: float = 2.0) -> bool:
    """True once the database is at the scripts' head; False if ``timeout`` seconds pass first."""
    head = script_head(url)
    deadline = time.monotonic() + timeout
    while True:
        current = current_revision(url)
        if current == head:
            return True
        if time.monotonic() >= deadline:
            print(f"migrations: database at {current!r}, expected {head!r}", file=sys.stderr)
            return False
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.common.migrate")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("upgrade", help="apply every migration (like `alembic upgrade head`)")
    wait = sub.add_parser("wait", help="wait until the database is at the scripts' head")
    wait.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    args = parser.parse_args(argv)
    url = database_url()
    if args.command == "upgrade":
        upgrade_to_head(url)
        return 0
    return 0 if wait_for_head(url, args.timeout) else 1


if __name__ == "__main__":
    raise SystemExit(main())
