"""Migration 0015: the check tables leave room for in-place updates and the per-row foreign
key check is gone; the downgrade puts both back."""

from __future__ import annotations

from alembic import command

from services.common.migrate import alembic_config, upgrade_to_head
from tests.helpers import query
from tests.servers import PostgresHandle, unique_name


def _options(url: str, table: str) -> list[str]:
    rows = query(
        url,
        "SELECT coalesce(reloptions, '{}') FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = 'drift' AND c.relname = %s",
        (table,),
    )
    return list(rows[0][0])


def _foreign_keys(url: str) -> int:
    rows = query(
        url,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
        " AND conrelid = 'drift.subscription_checks'::regclass",
    )
    return int(rows[0][0])


def test_0015_fillfactor_and_foreign_key_both_ways(pg: PostgresHandle) -> None:
    url = pg.create_database(unique_name("checkwrites"))
    upgrade_to_head(url)
    assert _options(url, "subscription_checks") == ["fillfactor=50"]
    assert _options(url, "accounts") == ["fillfactor=50"]
    assert _foreign_keys(url) == 0
    command.downgrade(alembic_config(url), "0014_query_scaling")
    assert _options(url, "subscription_checks") == []
    assert _options(url, "accounts") == []
    assert _foreign_keys(url) == 1
    upgrade_to_head(url)
    assert _foreign_keys(url) == 0
