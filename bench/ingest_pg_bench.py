"""PostgreSQL's share of a webhook, statement by statement: backend CPU per row of the ingest's
archive INSERT, the publisher's ``published_at`` stamp and a payload read, with the bytes per
row, for variants of ``ingest.stripe_events`` (scratch copies in one database).

The service bench (bench/ingest_bench.py) gives PostgreSQL's CPU per webhook as a whole; this
one says which statement, trigger, index or storage choice it goes to (issue 12 goal 3).
Payloads: the real fixtures' events (``--bodies fixtures``, their real size mix) or the service
bench's ~3 KB event (``--bodies bench``).

    .venv/bin/python -m bench.ingest_pg_bench --rows 10000 --bodies fixtures
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.ingest_bench import make_bodies
from bench.stack import bench_stack
from services.common.config import libpq_url
from services.ingest.archive import INSERT_BATCH_SQL
from services.ingest.publisher import STAMP_SQL

FIXTURES = Path(__file__).resolve().parents[2] / "shared/fixtures/stripe_events"
INSERT_BATCH = 64  # about the service's group commits at concurrency 64
STAMP_BATCH = 200  # about the stamper's ids per UPDATE (at most one per 20 ms at ~9,000/s)
READ_BATCH = 500


@dataclass(frozen=True)
class Variant:
    """One shape of the archive table."""

    name: str
    guard: str  # "every-update": 0001/0013's trigger; "head": the triggers as migrated now
    storage: str  # payload's STORAGE: "extended" (pglz) or "external" (uncompressed)
    unpublished_index: bool = True  # the partial index WHERE published_at IS NULL
    fillfactor: int = 100


VARIANTS = {
    v.name: v
    for v in (
        Variant("before-0018", "every-update", "extended"),
        Variant("guard-0018", "head", "extended"),
        Variant("head", "head", "external"),
        Variant("head-no-unpublished-index", "head", "external", unpublished_index=False),
        Variant("head-no-unpublished-index-ff70", "head", "external", False, 70),
        Variant("head-no-unpublished-index-ff50", "head", "external", False, 50),
    )
}


def fixture_bodies(count: int) -> list[bytes]:
    """The real fixtures' events, cycled with fresh ids: their real size mix."""
    documents = []
    for path in sorted(FIXTURES.rglob("*.json")):
        document = json.loads(path.read_bytes())
        if isinstance(document, dict) and document.get("object") == "event":
            documents.append(document)
    if not documents:
        raise SystemExit(f"no fixture events under {FIXTURES}")
    bodies = []
    for i in range(count):
        document = dict(documents[i % len(documents)], id=f"evt_pg_{i:08d}")
        bodies.append(json.dumps(document).encode())
    return bodies


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_table(conn: psycopg.Connection[Any], variant: Variant) -> sql.Identifier:
    table = sql.Identifier("ingest", "v_" + variant.name.replace("-", "_"))
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE ingest.stripe_events INCLUDING ALL)").format(table))
    conn.execute(
        sql.SQL("ALTER TABLE {} ALTER COLUMN payload SET STORAGE {}").format(
            table, sql.SQL(variant.storage.upper())
        )
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} SET (fillfactor = {})").format(
            table, sql.Literal(variant.fillfactor)
        )
    )
    if not variant.unpublished_index:
        (index,) = conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass"
            " AND pg_get_expr(indpred, indrelid) LIKE '%%published_at%%'",
            (table.as_string(conn),),
        ).fetchone() or ("",)
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(*index.split("."))))
    if variant.guard == "every-update":
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER guard BEFORE UPDATE ON {} FOR EACH ROW"
                " EXECUTE FUNCTION ingest.stripe_events_guard()"
            ).format(table)
        )
    else:
        definitions = conn.execute(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger"
            " WHERE tgrelid = 'ingest.stripe_events'::regclass AND NOT tgisinternal"
        ).fetchall()
        for (definition,) in definitions:
            copied = definition.replace(
                " ON ingest.stripe_events ", f" ON {table.as_string(conn)} "
            )
            conn.execute(copied)  # a definition PostgreSQL itself printed
    return table


def wal_lsn(conn: psycopg.Connection[Any]) -> int:
    """Where WAL insertion is now, in bytes (the WAL a statement wrote is the difference)."""
    (lsn,) = conn.execute(
        "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"
    ).fetchone() or (0,)
    return int(lsn)


def measure(conn: psycopg.Connection[Any], pid: int, variant: Variant,
            bodies: list[bytes]) -> dict[str, float]:
    table = make_table(conn, variant)
    name = table.as_string(conn)
    count = len(bodies)
    ids = [f"evt_pg_{i:08d}" for i in range(count)]
    insert = INSERT_BATCH_SQL.replace("ingest.stripe_events", name)
    now = datetime.now(UTC)
    started, wal_before = backend_cpu(pid), wal_lsn(conn)
    for s in range(0, count, INSERT_BATCH):
        chunk = bodies[s:s + INSERT_BATCH]
        n = len(chunk)
        conn.execute(insert, (  # type: ignore[call-overload]
            ids[s:s + n], ["customer.subscription.created"] * n, ["2020-08-27"] * n,
            [now] * n, [False] * n, [None] * n, chunk,
            [hashlib.sha256(b).digest() for b in chunk], ["webhook"] * n, [None] * n,
            [now] * n, ["cus_x"] * n,
        )).fetchall()
    insert_us = (backend_cpu(pid) - started) / count * 1e6
    insert_wal = (wal_lsn(conn) - wal_before) / count
    stamp = STAMP_SQL.replace("ingest.stripe_events", name)  # the publisher's statement
    started, wal_before = backend_cpu(pid), wal_lsn(conn)
    for s in range(0, count, STAMP_BATCH):
        conn.execute(stamp, (datetime.now(UTC), ids[s:s + STAMP_BATCH]))  # type: ignore[call-overload]
    stamp_us = (backend_cpu(pid) - started) / count * 1e6
    stamp_wal = (wal_lsn(conn) - wal_before) / count
    read = sql.SQL(
        "SELECT archive_seq, payload FROM {} WHERE archive_seq > %s ORDER BY archive_seq LIMIT %s"
    ).format(table)
    started = backend_cpu(pid)
    last = 0
    while rows := conn.execute(read, (last, READ_BATCH)).fetchall():
        last = rows[-1][0]
    read_us = (backend_cpu(pid) - started) / count * 1e6
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")  # the flush happens at the end of a transaction
    (hot, updated, total_bytes, heap_bytes) = conn.execute(
        "SELECT n_tup_hot_upd, n_tup_upd, pg_total_relation_size(relid),"
        " pg_relation_size(relid) FROM pg_stat_user_tables WHERE relid = %s::regclass",
        (name,),
    ).fetchone() or (0, 0, 0, 0)
    return {
        "insert_us_per_row": insert_us,
        "stamp_us_per_row": stamp_us,
        "insert_wal_bytes_per_row": insert_wal,
        "stamp_wal_bytes_per_row": stamp_wal,
        "read_us_per_row": read_us,
        "hot_share": hot / updated if updated else 0.0,
        "bytes_per_row": total_bytes / count,
        "heap_bytes_per_row": heap_bytes / count,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--bodies", choices=("fixtures", "bench"), default="fixtures")
    parser.add_argument(
        "--variants",
        default="before-0018,guard-0018,head,before-0018,guard-0018,head",
        help="comma-separated, measured in this order: " + ", ".join(VARIANTS),
    )
    args = parser.parse_args(argv)
    bodies = fixture_bodies(args.rows) if args.bodies == "fixtures" else make_bodies(args.rows)
    print(f"{len(bodies)} payloads, mean {sum(map(len, bodies)) / len(bodies):.0f} B,"
          f" {sum(len(b) > 2000 for b in bodies) / len(bodies):.0%} over 2,000 B", flush=True)
    with bench_stack() as stack, psycopg.connect(libpq_url(stack.database_url),
                                                 autocommit=True) as conn:
        (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (0,)
        for run, name in enumerate(args.variants.split(",")):
            figures = measure(conn, pid, VARIANTS[name], bodies)
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier("ingest", "v_" + name.replace("-", "_")),
                sql.Identifier(f"done_{run}"),
            ))
            print(f"{name:32s} " + "  ".join(f"{k} {v:7.2f}" for k, v in figures.items()),
                  flush=True)


if __name__ == "__main__":
    main()
