"""The replay's writer alone: projected batches written into a fresh ledger, per statement.

Why alone: in a replay the projection (worker processes) and the writer (one connection,
PostgreSQL) overlap, so an end-to-end rate says which one is slower, not what either costs.
Here a simulator world is projected ONCE (``project_merged`` per batch, as a replay worker
does, in archive order) and pickled; each run then creates a fresh database, migrates it
and times only ``replay.write_projected`` over those batches (``--live``: each batch
written as the live consumer writes its own): wall time, PostgreSQL's CPU (its processes
in ``/proc``, steadier than wall time on a shared machine), the bench process's own CPU,
and the time of every statement from ``pg_stat_statements`` (and of the statements that
functions and triggers run inside them). A digest of every rebuilt table and every query_*
table shows that runs (and trees) wrote the same ledger.

    .venv/bin/python -m bench.ledger_writer_bench --tenants 500 --months 12 --runs 2

``--table-stats`` prints, after each run, the tables with the most dead tuples (what the run
left for vacuum: a delete-and-reinsert refresh leaves one dead row per row it rewrites) and
their sizes; ``--explain-payments N`` runs the payments refund refresh for N of the ledger's
payments under EXPLAIN ANALYZE, the statement before livepg6's rewrite and after, in turns,
on the ledger as the run left it (never analyzed unless autovacuum got to it: printed).

``--count-refreshes`` (a separate run: it slows the refreshes a little) wraps each
``query_refresh_*`` in a counter and prints, per batch, how many times each ran and for how
many ids (distinct within a call, in all, and distinct over the batch): what one refresh per
batch saves (issue 12, seventh pass). Every run also prints the query_* functions' own time
from ``pg_stat_user_functions`` (``track_functions = pl``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.ledger_bench import ledger_digest
from services.common.config import libpq_url
from services.common.db import make_async_engine
from services.common.migrate import upgrade_to_head
from services.devstack.embedded import EmbeddedPostgres, free_port
from services.ledger import replay
from services.ledger.db import raw_transaction
from services.ledger.projection import PAYMENTS_REFRESH, apply_staged
from services.stripe_simulator import WorldConfig, iter_events, serialize_event


def archive_order(config: WorldConfig, limit: int | None) -> Iterator[replay.Archived]:
    """(event id, payload) in the archive's ``(stripe_created_at, event_id)`` order. The
    world streams chronologically; only events of the same second are re-sorted."""
    same: list[tuple[str, bytes]] = []
    second: int | None = None
    for i, event in enumerate(iter_events(config)):
        if limit is not None and i >= limit:
            break
        if event["created"] != second:
            yield from sorted(same)
            same, second = [], event["created"]
        same.append((event["id"], serialize_event(event)))
    yield from sorted(same)


def prepare(config: WorldConfig, limit: int | None, batch_size: int, path: Path) -> int:
    """Project the world batch by batch and pickle each batch as the writer receives it."""
    count = 0
    with path.open("wb") as out:
        batch: list[replay.Archived] = []
        for item in archive_order(config, limit):
            batch.append(item)
            if len(batch) == batch_size:
                pickle.dump(replay.project_merged(batch), out, pickle.HIGHEST_PROTOCOL)
                count += len(batch)
                batch = []
        if batch:
            pickle.dump(replay.project_merged(batch), out, pickle.HIGHEST_PROTOCOL)
            count += len(batch)
    return count


async def batches(path: Path, limit: int | None = None) -> AsyncGenerator[Any, None]:
    """The pickled batches, one at a time (the payloads are not kept: nothing fails here);
    the first ``limit`` only, if given (a smaller ledger from the same world)."""
    with path.open("rb") as source:
        for _ in iter(int, 1) if limit is None else range(limit):
            try:
                projected = pickle.load(source)  # noqa: S301 - our own file
            except EOFError:
                return
            yield projected, [], None


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, the children it has reaped and its running children (PostgreSQL's
    postmaster: every backend, autovacuum and parallel worker), Linux ``/proc`` only."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK") + sum(tree_cpu_seconds(int(c)) for c in children)


def query_digest(url: str) -> str:
    """One hash over every query_* table of the ledger (rows as text, sorted)."""
    digest = hashlib.sha256()
    with psycopg.connect(libpq_url(url)) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'ledger'"
            " AND tablename LIKE 'query%%' ORDER BY 1"
        ).fetchall()
        for (table,) in tables:
            row = conn.execute(
                f"SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text))"  # noqa: S608
                f" FROM ledger.{table} t"
            ).fetchone()
            digest.update(f"{table}:{row[0] if row else None}\n".encode())
    return digest.hexdigest()


def index_count(url: str) -> int:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'ledger'").fetchone()
        return int(row[0]) if row else 0


@dataclass
class Run:
    events: int
    seconds: float
    pg_cpu: float
    own_cpu: float
    statements: list[tuple[str, int, float]]  # (query, calls, total ms), sent by the writer
    nested: list[tuple[str, int, float]]  # run inside those (functions, triggers)
    digest: str
    indexes: tuple[int, int]  # ledger indexes after the run, and in a fresh schema
    url: str
    functions: list[tuple[str, int, float, float]]  # (name, calls, total ms, self ms)


def _label(query: str) -> str:
    text = re.sub(r"\s+", " ", query).strip()
    return text if len(text) <= 110 else text[:107] + "..."


async def _live(engine: AsyncEngine, path: Path, limit: int | None) -> replay.ReplayReport:
    """The batches written as the live consumer writes its batches: one transaction each,
    ``ON CONFLICT``, derived columns refreshed and query_* tables maintained per batch."""
    started = time.perf_counter()
    report = replay.ReplayReport()
    async for projected, _events, _horizon in batches(path, limit):
        async with raw_transaction(engine) as conn:
            result = await apply_staged(conn, projected.staged, projected.examined)
        report.examined += projected.examined
        report.applied += result.applied
    report.seconds = time.perf_counter() - started
    return report


async def _write(url: str, path: Path, live: bool, limit: int | None) -> tuple[int, float, float]:
    engine = make_async_engine(url, pool_size=2, statement_timeout_ms=600_000)
    try:
        writer = getattr(replay, "write_projected", None)
        if live:
            report = await _live(engine, path, limit)
        elif writer is not None:
            report = await writer(engine, batches(path, limit))
        else:  # a tree from before write_projected: the same loop behind replay_archive
            replay._projected = lambda *_a, **_k: batches(path, limit)  # type: ignore[assignment]
            report = await replay.replay_archive(engine, None)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    if report.failed or report.unreadable:
        raise RuntimeError(f"the writer failed events: {report.failures}")
    return report.examined, report.seconds, report.applied


def run_once(
    pg: EmbeddedPostgres,
    path: Path,
    index: int,
    live: bool,
    limit: int | None = None,
    functions: Path | None = None,
    count_refreshes: bool = False,
) -> Run:
    name = f"writer_{index}"
    url = pg.create_database(name)
    upgrade_to_head(url)
    if functions is not None:  # e.g. a revision's downgrade copy: the functions before it
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(functions.read_text(encoding="utf-8"))  # type: ignore[arg-type]
    fresh_indexes = index_count(url)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        if count_refreshes:
            conn.execute(COUNT_REFRESHES_SQL)  # type: ignore[arg-type]
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SELECT pg_stat_reset()")
    assert pg.process is not None
    cpu0, own0 = tree_cpu_seconds(pg.process.pid), time.process_time()
    events, seconds, _applied = asyncio.run(_write(url, path, live, limit))
    cpu1, own1 = tree_cpu_seconds(pg.process.pid), time.process_time()
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT query, calls, total_exec_time + total_plan_time, toplevel"
            " FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query NOT LIKE '%%pg_stat_statements%%' ORDER BY 3 DESC"
        ).fetchall()
        conn.execute("SELECT pg_stat_clear_snapshot()")
        functions_used = conn.execute(
            "SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions"
            " WHERE schemaname = 'ledger' AND funcname LIKE 'query%%' ORDER BY 3 DESC"
        ).fetchall()
    digest = ledger_digest(url)[:16] + "/" + query_digest(url)[:16]
    return Run(
        events,
        seconds,
        cpu1 - cpu0,
        own1 - own0,
        [(str(q), int(c), float(ms)) for q, c, ms, top in rows if top],
        [(str(q), int(c), float(ms)) for q, c, ms, top in rows if not top],
        digest,
        (index_count(url), fresh_indexes),
        url,
        [(str(n), int(c), float(t), float(st)) for n, c, t, st in functions_used],
    )


def report(run: Run, index: int, top: int) -> None:
    us = 1e6 / run.events
    print(
        f"run {index}: {run.events} events in {run.seconds:.2f}s ="
        f" {run.events / run.seconds:,.0f} events/s; per event: wall {run.seconds * us:.1f} us,"
        f" PostgreSQL CPU {run.pg_cpu * us:.1f} us, writer's own CPU {run.own_cpu * us:.1f} us;"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    total = sum(ms for _, _, ms in run.statements)
    print(f"  statements (pg_stat_statements), total {total * 1000 / run.events:.1f} us/event:")
    for query, calls, ms in run.statements[:top]:
        print(f"  {ms * 1000 / run.events:8.1f} us/event {calls:6d} calls  {_label(query)}")
    print("  inside them (functions, triggers; already counted above):")
    for query, calls, ms in run.nested[: top // 2]:
        print(f"  {ms * 1000 / run.events:8.1f} us/event {calls:6d} calls  {_label(query)}")
    print("  query functions (pg_stat_user_functions): calls, total / self us per event:")
    for name, calls, total_ms, self_ms in run.functions[:top]:
        print(
            f"  {total_ms * 1000 / run.events:8.1f} / {self_ms * 1000 / run.events:8.1f}"
            f" us/event {calls:6d} calls  {name}"
        )
    print(
        f"  ledger digest (rebuilt tables / query tables): {run.digest};"
        f" ledger indexes after the run {run.indexes[0]} (fresh schema {run.indexes[1]})"
    )


#: ``--count-refreshes``: each ``ledger.query_refresh_*`` renamed and wrapped by a function of
#: its old name that logs (transaction, ids asked, distinct non-null ids) before calling it;
#: every caller (triggers, a flush) resolves the name at run time, so all calls are counted.
_REFRESHES = ("accounts", "mrr", "invoices")
_COUNTED = """
ALTER FUNCTION ledger.query_refresh_KIND(text[]) RENAME TO query_refresh_KIND_counted;
CREATE FUNCTION ledger.query_refresh_KIND(p_ids text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.bench_refresh_log VALUES ('KIND', pg_current_xact_id(),
        COALESCE(cardinality(p_ids), 0),
        ARRAY(SELECT DISTINCT k FROM unnest(p_ids) AS u(k) WHERE k IS NOT NULL));
    PERFORM ledger.query_refresh_KIND_counted(p_ids);
END $$;
"""
COUNT_REFRESHES_SQL = (
    "CREATE UNLOGGED TABLE public.bench_refresh_log"
    " (kind text, xid xid8, asked int, ids text[]);"
    + "".join(_COUNTED.replace("KIND", kind) for kind in _REFRESHES)
)

REFRESH_COUNTS = """
WITH per_call AS (
    SELECT kind, xid, cardinality(ids) AS n FROM public.bench_refresh_log
), per_batch AS (
    SELECT l.kind, l.xid, count(*) AS calls, sum(cardinality(l.ids)) AS ids,
           (SELECT count(DISTINCT k) FROM public.bench_refresh_log l2, unnest(l2.ids) AS k
            WHERE l2.kind = l.kind AND l2.xid = l.xid) AS distinct_ids,
           count(*) FILTER (WHERE cardinality(l.ids) > 0) AS calls_with_ids
    FROM public.bench_refresh_log l GROUP BY l.kind, l.xid
)
SELECT kind, count(*) AS batches, sum(calls), sum(calls_with_ids), sum(ids),
       sum(distinct_ids), max(calls_with_ids)
FROM per_batch GROUP BY kind ORDER BY kind
"""


def refresh_counts(url: str) -> None:
    """Per kind of refresh over the run's transactions: calls (with ids), ids computed and
    the distinct ids of each batch (what one refresh per batch computes)."""
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(REFRESH_COUNTS).fetchall()
    print(
        "  refreshes per kind: batches, calls (with ids), ids computed, distinct ids per"
        " batch summed (ids / distinct), most calls with ids in one batch"
    )
    for row in rows:
        kind, (n, calls, with_ids, ids, distinct, most) = row[0], map(int, row[1:])
        ratio = ids / distinct if distinct else 0.0
        print(
            f"  {kind:10s} {n:5d} batches {calls:6d} calls ({with_ids:5d} with ids)"
            f" {ids:7d} ids {distinct:7d} distinct ({ratio:.2f}x)  max {most} calls/batch"
        )


TABLE_STATS = """
SELECT s.relname, s.n_live_tup, s.n_dead_tup, s.n_tup_ins, s.n_tup_upd, s.n_tup_hot_upd,
       s.n_tup_del, s.autovacuum_count, s.autoanalyze_count,
       pg_relation_size(s.relid) AS heap, pg_indexes_size(s.relid) AS indexes
FROM pg_stat_user_tables s
WHERE s.schemaname = 'ledger'
ORDER BY s.n_dead_tup DESC, s.relname
LIMIT %s
"""


def table_stats(url: str, top: int) -> None:
    """Dead tuples and sizes of the ledger's tables after a run (the statistics collector's
    counts, flushed by the run's own connections when they closed)."""
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = conn.execute(TABLE_STATS, (top,)).fetchall()
    print(
        "  tables by dead tuples: live, dead, inserted, updated (HOT), deleted,"
        " autovacuums/autoanalyzes, heap kB, indexes kB"
    )
    for r in rows:
        print(
            f"  {r[0]:32s} {r[1]:8d} {r[2]:8d} {r[3]:8d} {r[4]:8d} ({r[5]:d}) {r[6]:8d}"
            f"  {r[7]}/{r[8]}  {r[9] // 1024:8d} {r[10] // 1024:8d}"
        )


def _plan_nodes(node: dict[str, Any], found: list[str]) -> None:
    """The scans of refunds and charges in an EXPLAIN (FORMAT JSON) plan, with their loops."""
    if node.get("Relation Name") in ("refunds", "charges") or node.get("Node Type") in (
        "BitmapOr",
    ):
        name = node.get("Index Name") or node.get("Relation Name") or ""
        found.append(
            f"{node['Node Type']} {name} loops={node.get('Actual Loops')}"
            f" {node.get('Actual Total Time', 0):.3f} ms/loop"
        )
    for child in node.get("Plans", []):
        _plan_nodes(child, found)


def explain_payments(url: str, count: int, turns: int = 2) -> None:
    """EXPLAIN ANALYZE of the payments refund refresh for ``count`` payments (sampled by a
    hash of their ids, so the same ones every run), old statement and new in turns, each in
    a transaction rolled back."""
    from tests.ledger.queries.payments_refresh_oracle import OLD_PAYMENTS_REFRESH

    keys = (
        "p2.invoice_id = ANY(%b) OR p2.payment_intent_id = ANY(%b)"
        " OR p2.invoice_charge_id = ANY(%b)"
    )
    with psycopg.connect(libpq_url(url)) as conn:
        stats = conn.execute(
            "SELECT c.relname, c.reltuples, (SELECT count(*) FROM ledger.refunds),"
            " (SELECT count(*) FROM ledger.payments), (SELECT count(*) FROM ledger.charges)"
            " FROM pg_class c WHERE c.oid = 'ledger.refunds'::regclass"
        ).fetchone()
        assert stats is not None
        print(
            f"  explain: refunds reltuples {stats[1]:.0f} (-1: never analyzed), rows: refunds"
            f" {stats[2]}, payments {stats[3]}, charges {stats[4]}"
        )
        sample = conn.execute(
            "SELECT invoice_id, payment_intent_id, invoice_charge_id FROM ledger.payments"
            " ORDER BY md5(invoice_id) LIMIT %s",
            (count,),
        ).fetchall()
        params = (
            [r[0] for r in sample],
            [r[1] for r in sample if r[1]],
            [r[2] for r in sample if r[2]],
        )
        for turn in range(turns):
            for label, statement in (("old", OLD_PAYMENTS_REFRESH), ("new", PAYMENTS_REFRESH)):
                with conn.transaction(force_rollback=True):
                    row = conn.execute(
                        "EXPLAIN (ANALYZE, FORMAT JSON) "  # type: ignore[arg-type]
                        + statement.format(s="ledger", keys=keys),
                        params,
                    ).fetchone()
                assert row is not None
                plan = row[0][0]
                found: list[str] = []
                _plan_nodes(plan["Plan"], found)
                print(
                    f"  explain {label} (turn {turn + 1}): {plan['Execution Time']:.1f} ms,"
                    f" planning {plan['Planning Time']:.1f} ms; " + "; ".join(found)
                )


def explain_accounts(url: str, count: int) -> None:
    """``query_refresh_accounts`` of ``count`` accounts (sampled by a hash of their ids) under
    auto_explain (ANALYZE, nested statements, sent to this client as notices), in a
    transaction rolled back: the plans of the function's statements on the ledger as the run
    left it, printed in full."""
    with psycopg.connect(libpq_url(url)) as conn:
        plans: list[str] = []
        conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT account_id FROM ledger.query_accounts ORDER BY md5(account_id) LIMIT %s",
                (count,),
            ).fetchall()
        ]
        with conn.transaction(force_rollback=True):
            conn.execute("LOAD 'auto_explain'")
            for setting in (
                "auto_explain.log_min_duration = 0",
                "auto_explain.log_analyze = on",
                "auto_explain.log_nested_statements = on",
                "auto_explain.log_level = notice",
                "client_min_messages = notice",
            ):
                conn.execute(f"SET LOCAL {setting}")  # type: ignore[arg-type]
            conn.execute("SELECT ledger.query_refresh_accounts(%s)", (ids,))
    print(f"  explain query_refresh_accounts({len(ids)} accounts):")
    for plan in plans:
        print("    " + plan.replace("\n", "\n    "))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ledger_writer_bench", description=__doc__)
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1, help="fresh databases written in turn")
    parser.add_argument("--top", type=int, default=25, help="statements listed per run")
    parser.add_argument(
        "--live",
        action="store_true",
        help="write each batch as the live consumer does (no bulk load; --batch-size is then"
        " the consumer's batch)",
    )
    parser.add_argument(
        "--naptime",
        type=int,
        default=None,
        help="autovacuum_naptime of the bench's server in seconds (default PostgreSQL's 60):"
        " a fresh ledger has no statistics until autovacuum's first ANALYZE, and without them"
        " the live consumer's query_* triggers plan a scan of billing_events per account;"
        " `--live --naptime 1` measures a ledger whose statistics autoanalyze keeps, as on a"
        " ledger that has been running",
    )
    parser.add_argument(
        "--max-batches", type=int, default=None, help="write only the first N pickled batches"
    )
    parser.add_argument(
        "--functions",
        type=Path,
        default=None,
        help="an SQL file run on each fresh ledger after its migrations (e.g. a revision's"
        " frozen downgrade copy: the same tree with the functions as they were before it)",
    )
    parser.add_argument(
        "--no-autovacuum",
        action="store_true",
        help="autovacuum off on the bench's server: the ledger stays never analyzed however"
        " long the run (a run over 60 s otherwise gets autovacuum's first ANALYZE mid-way)",
    )
    parser.add_argument("--table-stats", type=int, default=0, help="tables listed by dead tuples")
    parser.add_argument(
        "--count-refreshes",
        action="store_true",
        help="count the query_refresh_* calls and their ids per batch (wraps each in a"
        " logging function: a counting run, not a timing run)",
    )
    parser.add_argument(
        "--explain-payments",
        type=int,
        default=0,
        help="payments whose refund refresh is run under EXPLAIN ANALYZE after each run",
    )
    parser.add_argument(
        "--explain-accounts",
        type=int,
        default=0,
        help="accounts whose query_refresh_accounts is run under auto_explain after each run",
    )
    parser.add_argument(
        "--batches",
        type=Path,
        default=None,
        help="pickled batches: reused if the file exists, else written there (default: a"
        " temporary file)",
    )
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    root = Path(tempfile.mkdtemp(prefix="billing-writer-bench-"))
    path = args.batches or root / "batches.pickle"
    try:
        if not path.exists():
            config = WorldConfig(seed=args.seed, tenants=args.tenants, months=args.months)
            started = time.perf_counter()
            count = prepare(config, args.max_events, args.batch_size, path)
            print(f"projected {count} events in {time.perf_counter() - started:.1f}s -> {path}")
        pg = EmbeddedPostgres(root / "pg", free_port())
        pg.start()
        try:
            with psycopg.connect(pg.admin_url, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
                conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
                conn.execute("ALTER SYSTEM SET track_functions = 'pl'")
                if args.no_autovacuum:
                    conn.execute("ALTER SYSTEM SET autovacuum = off")
                if args.naptime is not None:
                    conn.execute(f"ALTER SYSTEM SET autovacuum_naptime = {int(args.naptime)}")
            pg.stop()
            pg.start()
            for index in range(args.runs):
                run = run_once(
                    pg,
                    path,
                    index,
                    args.live,
                    args.max_batches,
                    args.functions,
                    args.count_refreshes,
                )
                report(run, index, args.top)
                if args.count_refreshes:
                    refresh_counts(run.url)
                if args.table_stats:
                    table_stats(run.url, args.table_stats)
                if args.explain_accounts:
                    explain_accounts(run.url, args.explain_accounts)
                if args.explain_payments:
                    explain_payments(run.url, args.explain_payments)
        finally:
            pg.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"finished {datetime.now(UTC):%H:%M:%S} UTC")


if __name__ == "__main__":
    main(sys.argv[1:])
