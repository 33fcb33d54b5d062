"""A replay into an empty ledger is a bulk load: secondary indexes are built once at its end.

Why: maintaining the secondary indexes row by row is most of what a fresh replay pays
PostgreSQL (issue 12: COPY into billing_events with its indexes cost about twice the COPY
without them), while one ``CREATE INDEX`` over the loaded table sorts each index once. The
batches of such a replay need none of these indexes: billing rows are copied in (the
unique key on ``stripe_event_id`` stays and still catches a racing writer), read models are
upserted by their primary key, and the derived-column refresh and the query_* maintenance
are deferred to the end (see :mod:`services.ledger.replay`).

Where the definitions come from: the catalog (``pg_get_indexdef``), read just before the
drop, so the migrations stay the one home of the index list. Unique and primary-key indexes
and those backing a constraint are never dropped.

Why a killed or failed replay never leaves the ledger without them: the definitions are
recorded in the same transaction that drops the indexes, as the comment of their table (the
catalog holds both, so either both changes are committed or neither; no extra table or
migration). :func:`restore_indexes` rebuilds whatever is recorded and clears the record, in
one transaction; it runs at the end of the bulk replay, at the start of every replay (before
it decides anything) and when the ledger service starts. Restoring while a bulk replay is
still running elsewhere is safe, only slower: its later batches maintain the indexes again.

Autovacuum is off for the same tables over the same span (:func:`_autovacuum`): dropped with
the indexes, back with them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.db import DatabaseUnavailable, raw_transaction
from services.ledger.tables import READ_MODELS, check_schema

log = logging.getLogger(__name__)

#: Tables a replay writes; none of their secondary indexes is read by a bulk replay's batches.
BULK_TABLES = ("billing_events", "unsupported_events", *(m.name for m in READ_MODELS))

#: Tables whose rows the derived-column refresh rewrites (``ReadModel.derived``). The refresh
#: looks rows up in the OTHER tables by their secondary indexes, never in these, so a bulk
#: replay builds these tables' indexes after its one refresh (which then maintains none).
REFRESHED = tuple(m.name for m in READ_MODELS if m.derived)

#: The other tables, whose indexes the refresh does read.
READ_BY_REFRESH = tuple(t for t in BULK_TABLES if t not in REFRESHED)

#: The comment that records a table's dropped indexes starts with this text, then JSON.
RECORD_PREFIX = "bulk replay: indexes to rebuild: "

#: Memory for each index build (sorts in memory instead of on disk; session default 64 MB).
MAINTENANCE_WORK_MEM = "256MB"

_SECONDARY_SQL = """
SELECT c.relname AS table_name, ic.relname AS index_name,
       pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = ANY(%s)
  AND NOT i.indisunique AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY c.relname, ic.relname
"""

_RECORDED_SQL = """
SELECT c.relname AS table_name, obj_description(c.oid, 'pg_class') AS record
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind = 'r'
  AND starts_with(obj_description(c.oid, 'pg_class'), %s)
ORDER BY c.relname
"""


async def drop_indexes(cur: psycopg.AsyncCursor[Any], schema: str = "ledger") -> int:
    """Record and drop the secondary indexes of :data:`BULK_TABLES` in ``schema``, inside the
    caller's transaction (which must hold the schema's writer lock); returns how many."""
    check_schema(schema)
    await cur.execute(_SECONDARY_SQL, (schema, list(BULK_TABLES)))
    found = await cur.fetchall()
    by_table: dict[str, list[str]] = {}
    for row in found:
        by_table.setdefault(row[0], []).append(row[2])
    recorded = await _recorded(cur, schema)
    for table, definitions in by_table.items():
        # A record left by an earlier bulk replay (not restored yet) is kept and extended.
        await _record(cur, schema, table, [*recorded.get(table, []), *definitions])
    for row in found:
        await cur.execute(
            sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(schema), sql.Identifier(row[1]))
        )
    for table in by_table:
        await _autovacuum(cur, schema, table, enabled=False)
    return len(found)


async def restore_indexes(
    cur: psycopg.AsyncCursor[Any],
    schema: str = "ledger",
    *,
    tables: Collection[str] | None = None,
) -> int:
    """Build every recorded index (of ``tables`` only, if given) that does not exist and
    clear those records, inside the caller's transaction; returns how many definitions were
    recorded (0: nothing to do)."""
    check_schema(schema)
    recorded = await _recorded(cur, schema)
    if tables is not None:
        recorded = {table: found for table, found in recorded.items() if table in tables}
    if not recorded:
        return 0
    # An operator's long job, not a request: no statement deadline for the builds, and
    # enough memory for each build to sort in memory; the commit need not wait for its WAL
    # (lost in a crash, the builds and the cleared records are lost together, and the
    # record is restored again). All three gone at commit.
    await cur.execute("SET LOCAL statement_timeout = 0")
    await cur.execute("SET LOCAL synchronous_commit = off")
    await cur.execute(
        sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(MAINTENANCE_WORK_MEM))
    )
    count = 0
    for table, definitions in recorded.items():
        for definition in definitions:
            await cur.execute(_if_not_exists(definition, schema, table))
            count += 1
        await _autovacuum(cur, schema, table, enabled=True)
        await cur.execute(
            sql.SQL("COMMENT ON TABLE {}.{} IS NULL").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
        )
    return count


async def recorded_tables(cur: psycopg.AsyncCursor[Any], schema: str = "ledger") -> list[str]:
    """Tables of ``schema`` whose secondary indexes are dropped right now (recorded)."""
    return sorted(await _recorded(cur, check_schema(schema)))


async def restore_at_start(engine: AsyncEngine, schema: str = "ledger") -> None:
    """Restore the indexes a killed bulk replay left dropped (service start, in the
    background). Best effort: whatever stops it here (the database away, a build that fails,
    a malformed record) is logged, and the next replay, which restores first, meets it again
    and answers with it."""
    try:
        async with raw_transaction(engine) as conn, conn.cursor() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ledger:{schema}",))
            restored = await restore_indexes(cur, schema)
    except (DatabaseUnavailable, psycopg.Error, ValueError) as exc:
        log.warning("could not rebuild dropped indexes at start", extra={"error": repr(exc)})
        return
    if restored:
        log.warning("rebuilt indexes a bulk replay had dropped", extra={"indexes": restored})


async def _recorded(cur: psycopg.AsyncCursor[Any], schema: str) -> dict[str, list[str]]:
    await cur.execute(_RECORDED_SQL, (schema, list(BULK_TABLES), RECORD_PREFIX))
    rows = await cur.fetchall()
    out: dict[str, list[str]] = {}
    for row in rows:
        definitions = json.loads(str(row[1])[len(RECORD_PREFIX) :])
        if not isinstance(definitions, list) or not all(isinstance(d, str) for d in definitions):
            raise ValueError(f"malformed index record on {schema}.{row[0]}")
        out[str(row[0])] = definitions
    return out


async def _record(
    cur: psycopg.AsyncCursor[Any], schema: str, table: str, definitions: list[str]
) -> None:
    text = RECORD_PREFIX + json.dumps(definitions)
    await cur.execute(
        sql.SQL("COMMENT ON TABLE {}.{} IS {}").format(  # a utility statement: no parameters
            sql.Identifier(schema), sql.Identifier(table), sql.Literal(text)
        )
    )


async def _autovacuum(
    cur: psycopg.AsyncCursor[Any], schema: str, table: str, *, enabled: bool
) -> None:
    """Autovacuum off for a table while a bulk replay loads it, back to the server's default
    with its indexes (the migrations set no table's ``autovacuum_enabled``).

    Loaded from nothing, a table crosses autovacuum's insert threshold again and again: its
    VACUUM and ANALYZE ran beside the replay's batches and competed for the cores with them
    (issue 12, ninth pass), while the replay's end vacuums and analyzes every loaded table
    anyway. Switched in the transactions that drop and rebuild the indexes, so the record
    that brings the indexes back brings autovacuum back too.
    """
    name = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    if enabled:
        await cur.execute(sql.SQL("ALTER TABLE {} RESET (autovacuum_enabled)").format(name))
    else:
        await cur.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false)").format(name))


def _if_not_exists(definition: str, schema: str, table: str) -> sql.SQL:
    """A recorded ``pg_get_indexdef`` text made idempotent; anything that is not an index of
    ``schema.table`` is refused (the record is catalog data only the owner can write, but
    it is executed, so it is checked)."""
    head = "CREATE INDEX "
    if (
        not definition.startswith(head)
        or f" ON {schema}.{table} USING " not in definition
        or ";" in definition
    ):
        raise ValueError(f"not an index definition of {schema}.{table}: {definition!r}")
    return sql.SQL(head + "IF NOT EXISTS " + definition[len(head) :])  # type: ignore[arg-type]
