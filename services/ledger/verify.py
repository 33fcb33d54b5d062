"""VerifyLedger: rebuild the ledger from the archive alone and diff it against the live tables.

The rebuild goes into a scratch schema ``ledger_verify_<random>`` whose tables are created
``LIKE`` the live ones (same columns, types, constraints and indexes, so the very same
projection code runs against it), fed by ``IngestService.StreamArchive`` (the archive as
ingest serves it, not a peek into ingest's tables), diffed, and dropped whatever happens.

Live rows newer than the archive's horizon (the last ``(stripe_created_at, event_id)``
streamed) are left out of the diff: the consumer may have applied events archived after the
stream was read. On a quiescent ledger the diff is exact; 0 mismatches is the expected answer.

The read-side ``query_*`` tables are covered too. They are a pure function of the ledger's
source tables (``ledger.query_support_rebuild()`` computes them from scratch), so they are
checked against that function on the live sources: under the projection's advisory lock,
inside a savepoint that is rolled back, the live ``query_*`` rows are copied, the rebuild runs,
and the two are diffed by primary key. With the source tables equal to the archive's rebuild
(the first part) this makes the query tables a checked function of the archive as well. The
rebuild holds its locks for the duration; it is skipped (and said so in the log) while a bulk
replay has the query maintenance deferred.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from billing.ingest.v1 import ingest_pb2_grpc
from psycopg.rows import dict_row
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.db import raw_transaction
from services.ledger.replay import replay_archive
from services.ledger.snapshots import apply_snapshots
from services.ledger.tables import REBUILT_TABLES, check_schema, q

log = logging.getLogger(__name__)

#: The read-side tables maintained by the query triggers (migrations 0004-0006, 0012, 0014,
#: 0016, 0019).
QUERY_TABLES: tuple[str, ...] = (
    "query_accounts",
    "query_account_mix",
    "query_mrr_steps",
    "query_mrr_daily",
    "query_mrr_moves_daily",
    "query_invoice_rows",
    "query_revenue_daily",
    "query_event_daily",
    "query_event_hourly",
    "query_login_days",
    "query_login_users",
    "query_login_pairs",
    "query_account_facets",
    "query_invoice_daily",
    "query_mrr_totals",
    "query_unlisted_users",
    "query_session_hourly",
)


@dataclass(frozen=True, slots=True)
class Mismatch:
    table: str
    key: str
    kind: str  # missing_in_live | extra_in_live | different
    columns: tuple[str, ...]
    expected: dict[str, Any] | None
    actual: dict[str, Any] | None


@dataclass(slots=True)
class VerifyReport:
    mismatches: int = 0
    by_table: dict[str, int] = field(default_factory=dict)
    sample: list[Mismatch] = field(default_factory=list)
    examined: int = 0
    unreadable: int = 0  # archived events that are not readable Stripe events
    failed: int = 0  # archived events the rebuild could not apply
    seconds: float = 0.0
    scratch_schema: str = ""


async def create_scratch_schema(conn: psycopg.AsyncConnection[Any], scratch: str) -> None:
    """Empty copies of every rebuilt ledger table in ``scratch``."""
    check_schema(scratch)
    await conn.execute(f"CREATE SCHEMA {scratch}")
    for table, _, _ in REBUILT_TABLES:
        await conn.execute(f"CREATE TABLE {scratch}.{table} (LIKE ledger.{table} INCLUDING ALL)")
    # LIKE copies the default nextval('ledger.billing_events_id_seq'): give the copy its own.
    await conn.execute(f"CREATE SEQUENCE {scratch}.billing_events_id_seq")
    await conn.execute(
        f"ALTER TABLE {scratch}.billing_events ALTER COLUMN id"
        f" SET DEFAULT nextval('{scratch}.billing_events_id_seq')"
    )


async def _columns(conn: psycopg.AsyncConnection[Any], table: str) -> list[str]:
    cur = await conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'ledger' AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return [str(r[0]) for r in await cur.fetchall()]


def _horizon_condition(table: str) -> str:
    if table == "billing_events":
        return "(l.occurred_at, l.stripe_event_id) > (%(at)s, %(id)s)"
    if table == "unsupported_events":
        return "(COALESCE(l.occurred_at, '-infinity'), l.stripe_event_id) > (%(at)s, %(id)s)"
    return "(l.state_event_created, l.state_event_id) > (%(at)s, %(id)s)"


async def diff_table(
    conn: psycopg.AsyncConnection[Any],
    scratch: str,
    table: str,
    key: str,
    ignored: frozenset[str],
    horizon: tuple[datetime, str] | None,
    sample_size: int,
    live_schema: str = "ledger",
) -> tuple[int, list[Mismatch]]:
    """Count and sample the rows that differ between ``scratch.table`` and the live one."""
    columns = [c for c in await _columns(conn, table) if c not in ignored]
    s_cols = ", ".join(f"s.{q(c)}" for c in columns)
    l_cols = ", ".join(f"l.{q(c)}" for c in columns)
    where = f"ROW({s_cols}) IS DISTINCT FROM ROW({l_cols})"
    params: dict[str, Any] = {"limit": sample_size}
    if horizon is not None:
        where += f" AND NOT (l.{q(key)} IS NOT NULL AND {_horizon_condition(table)})"
        params.update(at=horizon[0], id=horizon[1])
    base = (
        f"FROM {scratch}.{table} s FULL JOIN {live_schema}.{table} l"
        f" ON s.{q(key)} = l.{q(key)} WHERE {where}"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT count(*) AS n {base}", params)
        counted = await cur.fetchone()
        count = int(counted["n"]) if counted else 0
        if count == 0 or sample_size <= 0:
            return count, []
        await cur.execute(
            f"SELECT COALESCE(s.{q(key)}, l.{q(key)}) AS k,"
            f" CASE WHEN s.{q(key)} IS NULL THEN NULL ELSE to_jsonb(s) END AS expected,"
            f" CASE WHEN l.{q(key)} IS NULL THEN NULL ELSE to_jsonb(l) END AS actual"
            f" {base} ORDER BY 1 LIMIT %(limit)s",
            params,
        )
        rows = await cur.fetchall()
    sample = []
    changed: tuple[str, ...]
    for row in rows:
        expected = _strip(row["expected"], ignored)
        actual = _strip(row["actual"], ignored)
        if actual is None:
            kind, changed = "missing_in_live", ()
        elif expected is None:
            kind, changed = "extra_in_live", ()
        else:
            kind = "different"
            changed = tuple(c for c in columns if expected.get(c) != actual.get(c))
        sample.append(Mismatch(table, str(row["k"]), kind, changed, expected, actual))
    return count, sample


def _strip(row: dict[str, Any] | None, ignored: frozenset[str]) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: v for k, v in row.items() if k not in ignored}


async def verify_ledger(
    engine: AsyncEngine,
    stub: ingest_pb2_grpc.IngestServiceStub,
    *,
    sample_size: int = 20,
    batch_size: int = 2000,
    executor: Executor | None = None,
) -> VerifyReport:
    """Rebuild into a scratch schema, diff every rebuilt table, drop the scratch schema."""
    started = time.perf_counter()
    scratch = f"ledger_verify_{secrets.token_hex(6)}"
    report = VerifyReport(scratch_schema=scratch)
    async with raw_transaction(engine) as conn:
        await create_scratch_schema(conn, scratch)
    try:
        replayed = await replay_archive(
            engine, stub, schema=scratch, batch_size=batch_size, executor=executor
        )
        async with raw_transaction(engine) as conn:  # disaster-recovery snapshots (issue 8)
            await apply_snapshots(conn, scratch)
        report.examined = replayed.examined
        report.unreadable = replayed.unreadable
        report.failed = replayed.failed
        async with raw_transaction(engine) as conn:
            for table, key, ignored in REBUILT_TABLES:
                count, sample = await diff_table(
                    conn,
                    scratch,
                    table,
                    key,
                    ignored,
                    replayed.horizon,
                    max(0, sample_size - len(report.sample)),
                )
                report.by_table[table] = count
                report.mismatches += count
                report.sample.extend(sample)
            await verify_query_tables(conn, report, sample_size)
    finally:
        async with raw_transaction(engine) as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
    report.seconds = time.perf_counter() - started
    return report


async def _primary_key(conn: psycopg.AsyncConnection[Any], table: str) -> list[str]:
    cur = await conn.execute(
        "SELECT a.attname FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary"
        " ORDER BY array_position(i.indkey::int2[], a.attnum)",
        (f"ledger.{table}",),
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def verify_query_tables(
    conn: psycopg.AsyncConnection[Any], report: VerifyReport, sample_size: int
) -> None:
    """Diff the live query_* rows against ``query_support_rebuild()`` of the live sources."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("ledger:ledger",))
    cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM ledger.query_support_deferred)")
    deferred = await cur.fetchone()
    if deferred and deferred[0]:
        log.warning("query tables not verified: a bulk replay has their maintenance deferred")
        return
    async with conn.transaction(force_rollback=True):
        for table in QUERY_TABLES:
            await conn.execute(
                f"CREATE TEMP TABLE _live_{table} ON COMMIT DROP AS"  # noqa: S608 - constants
                f" SELECT * FROM ledger.{table}"
            )
        await conn.execute("SELECT ledger.query_support_rebuild()")
        for table in QUERY_TABLES:
            count, sample = await _diff_query_table(
                conn, table, max(0, sample_size - len(report.sample))
            )
            report.by_table[table] = count
            report.mismatches += count
            report.sample.extend(sample)


async def _diff_query_table(
    conn: psycopg.AsyncConnection[Any], table: str, sample_size: int
) -> tuple[int, list[Mismatch]]:
    key = await _primary_key(conn, table)
    keys = ", ".join(q(c) for c in key)
    live, rebuilt = f"_live_{table}", f"ledger.{table}"
    differing = (  # keys whose rows differ in any column, from either side
        f"SELECT {keys} FROM (SELECT * FROM {rebuilt} EXCEPT SELECT * FROM {live}) a"  # noqa: S608
        f" UNION SELECT {keys} FROM (SELECT * FROM {live} EXCEPT SELECT * FROM {rebuilt}) b"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT count(*) AS n FROM ({differing}) d")  # noqa: S608
        counted = await cur.fetchone()
        count = int(counted["n"]) if counted else 0
        if count == 0 or sample_size <= 0:
            return count, []
        first = key[0]
        await cur.execute(
            f"SELECT CASE WHEN s.{q(first)} IS NULL THEN NULL ELSE to_jsonb(s) END AS expected,"  # noqa: S608
            f" CASE WHEN l.{q(first)} IS NULL THEN NULL ELSE to_jsonb(l) END AS actual"
            f" FROM ({differing}) d"
            f" LEFT JOIN {rebuilt} s ON {' AND '.join(f's.{q(c)} = d.{q(c)}' for c in key)}"
            f" LEFT JOIN {live} l ON {' AND '.join(f'l.{q(c)} = d.{q(c)}' for c in key)}"
            f" ORDER BY 1, 2 LIMIT %s",
            (sample_size,),
        )
        rows = await cur.fetchall()
    sample: list[Mismatch] = []
    for row in rows:
        expected, actual = row["expected"], row["actual"]
        either = expected or actual or {}
        shown_key = "/".join(str(either.get(c)) for c in key)
        if actual is None:
            kind, changed = "missing_in_live", ()
        elif expected is None:
            kind, changed = "extra_in_live", ()
        else:
            kind = "different"
            changed = tuple(c for c in expected if expected.get(c) != actual.get(c))
        sample.append(Mismatch(table, shown_key, kind, changed, expected, actual))
    return count, sample


def mismatch_json(row: dict[str, Any] | None) -> str:
    """A row of the sample as compact JSON for the gRPC answer."""
    return "" if row is None else json.dumps(row, sort_keys=True, default=str)


__all__ = [
    "QUERY_TABLES",
    "Mismatch",
    "VerifyReport",
    "create_scratch_schema",
    "diff_table",
    "mismatch_json",
    "verify_ledger",
    "verify_query_tables",
]
