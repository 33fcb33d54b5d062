"""Apply the Alembic migrations programmatically (used by `make run` and test fixtures)."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from alembic import command
from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]


def upgrade_to_head(url: str) -> None:
    """Bring the database at ``url`` to the newest schema; a no-op when already there."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    # migrations/env.py reads the URL like `alembic -x url=...` passes it.
    config.cmd_opts = Namespace(x=[f"url={url}"])
    command.upgrade(config, "head")
