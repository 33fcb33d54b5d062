"""Apply a batch of archived events to the ledger tables, in the caller's transaction.

Why the result does not depend on delivery order, duplicates or crashes:

* ``billing_events`` and ``unsupported_events`` are keyed by the Stripe event id and inserted
  with ``ON CONFLICT DO NOTHING``: a redelivery or a replay collides and is skipped, and each
  row is computed from its own payload only (``committed_mrr`` included: NULL when the payload
  carries no subscription state, see ``ledger.committed_mrr_as_of`` in migration 0002).
* Read models are merged by the rules of :mod:`services.ledger.tables` ("latest
  ``(stripe_created_at, event_id)`` wins", monotone LEAST/GREATEST), first inside the batch
  (several events for one key) and then against the stored row, in one statement per table.
* Derived columns are recomputed from the tables for every key the batch touched.
* Everything happens in the caller's transaction: a consumer killed mid-batch rolls the
  whole batch back, and the redelivery applies it again from scratch.
* Writers of one schema take a transaction-scoped advisory lock first. Latest-wins upserts
  alone would be safe concurrently, but derived columns are recomputed from other tables, and
  two concurrent READ COMMITTED transactions would each miss the other's uncommitted rows (a
  refund and its invoice applied by two consumers at once). Several ledger processes still
  share the consumer: parsing and classification run in parallel, commits take turns.

Rows go through ``COPY`` into per-session temporary staging tables and then one
``INSERT ... SELECT`` per table, the fastest way to move many rows into PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.adapt import PyFormat, Transformer

from services.ledger.effects import Effects, project_event
from services.ledger.tables import (
    BILLING_EVENT_COLUMNS,
    READ_MODELS,
    UNSUPPORTED_COLUMNS,
    check_schema,
    q,
)

_OCCURRED_AT = BILLING_EVENT_COLUMNS.index("occurred_at")


@dataclass(slots=True)
class BatchResult:
    """What one batch did: events seen, new billing rows, new unsupported-version records."""

    examined: int = 0
    applied: int = 0
    unsupported: int = 0
    touched: dict[str, int] = field(default_factory=dict)


#: A batch merged by :func:`merge_effects`: billing rows and unsupported rows by event id,
#: read-model rows by table and key. Plain dicts and tuples, so that a replay's worker process
#: hands it back to the writer cheaply (pickling the Effects objects costs ~5x more).
Merged = tuple[
    dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]], dict[str, dict[Any, tuple[Any, ...]]]
]


def merge_effects(effects: Iterable[Effects]) -> Merged:
    """Billing rows and unsupported rows by event id, read-model rows merged per key."""
    billing: dict[str, tuple[Any, ...]] = {}
    unsupported: dict[str, tuple[Any, ...]] = {}
    models: dict[str, dict[Any, tuple[Any, ...]]] = {m.name: {} for m in READ_MODELS}
    specs = {m.name: m for m in READ_MODELS}
    for e in effects:
        if e.billing is not None:  # named rows travel as plain tuples (cheaper to pickle)
            billing.setdefault(e.event_id, tuple(e.billing))
        if e.unsupported is not None:
            unsupported.setdefault(e.event_id, tuple(e.unsupported))
        for table, rows in e.rows.items():
            spec = specs[table]
            bucket = models[table]
            for row in rows:
                key = row[0]
                old = bucket.get(key)
                bucket[key] = row if old is None else spec.merge(old, row)
    return billing, unsupported, models


async def apply_batch(
    conn: psycopg.AsyncConnection[Any],
    events: Sequence[bytes | Effects],
    *,
    schema: str = "ledger",
) -> BatchResult:
    """Apply ``events`` (raw payloads or already projected) inside the open transaction.

    Raises ``BadEvent`` for an unreadable payload before writing anything; the consumer
    projects messages first and only passes the readable ones.
    """
    projected = [e if isinstance(e, Effects) else project_event(e) for e in events]
    staged = stage_merged(merge_effects(projected))
    return await apply_staged(conn, staged, len(projected), schema=schema)


@dataclass(slots=True)
class StagedBatch:
    """A merged batch as the writer needs it: each table's rows already encoded for
    ``COPY ... FROM STDIN`` (text format), and the key lists of the derived-column refreshes.

    Encoding is most of the writer's own CPU; done here, it runs where the projection runs (a
    replay's worker processes), and the one writer only moves bytes. Plain bytes and lists
    also cross a process boundary far more cheaply than rows of datetimes.
    """

    copies: dict[str, bytes]
    rows: dict[str, int]
    keys: dict[tuple[str, int], list[Any]]


#: (table, column index) of every key list the writer needs (``_stored_customers`` and
#: ``_refresh_derived``).
_KEY_COLUMNS = (
    ("accounts", 0),
    ("payment_methods", 0),
    ("payment_methods", 1),
    ("tax_ids", 0),
    ("tax_ids", 1),
    ("subscriptions", 0),
    ("subscription_schedules", 1),
    ("payments", 0),
    ("invoice_payments", 1),
    ("credit_notes", 1),
    ("refunds", 1),
    ("refunds", 2),
    ("charges", 0),
    ("charges", 1),
)


def stage_merged(merged: Merged) -> StagedBatch:
    """Encode a merged batch for the writer (pure: no connection needed)."""
    billing, unsupported, models = merged
    copies: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    if billing:
        rows = sorted(billing.values(), key=lambda r: (r[_OCCURRED_AT], r[0]))
        copies["billing_events"] = copy_text(rows)
        counts["billing_events"] = len(rows)
    if unsupported:
        copies["unsupported_events"] = copy_text(unsupported.values())
        counts["unsupported_events"] = len(unsupported)
    for spec in READ_MODELS:
        bucket = models[spec.name]
        if bucket:
            copies[spec.name] = copy_text(bucket.values())
            counts[spec.name] = len(bucket)
    keys = {
        (table, index): sorted(
            {row[index] for row in models[table].values() if row[index] is not None}
        )
        for table, index in _KEY_COLUMNS
    }
    return StagedBatch(copies, counts, keys)


_ESCAPES = (b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r")

#: Text of values whose type has one obvious rendering, the same as psycopg's text dumpers
#: give (``str(datetime)``, ``str(int)``, ``t``/``f``); anything else goes through psycopg.
_BOOL_TEXT = {True: "t", False: "f"}

#: Lists (flags, refund ids) and timestamps rendered once per distinct value: a batch
#: repeats a few dozen flag sets thousands of times, and an invoice's, a subscription's
#: times recur in each of its events (``str(datetime)`` costs ~2 us). Bounded: each is
#: cleared when it reaches the limit.
_LIST_TEXT: dict[tuple[Any, ...], str] = {}
_DATETIME_TEXT: dict[datetime, str] = {}
_CACHE_LIMIT = 1 << 16


def copy_text(rows: Iterable[tuple[Any, ...]]) -> bytes:
    """Rows in PostgreSQL's COPY text format, byte for byte what psycopg's ``Copy.write_row``
    sends (its own text dumpers render lists and any unusual type; str, int, bool, None and
    datetimes are rendered here the way those dumpers render them).

    Built as text and encoded once per table: the per-value dumper calls were ~20% of a
    replay worker's CPU (issue 12). A row needs escaping only if its joined text holds a
    backslash beyond its ``\\N`` markers, a newline, or more tabs than separators (rare: ids,
    codes and timestamps need none); such a row is rendered value by value.
    """
    lines: list[str] = []
    for row in rows:
        parts: list[str] = []
        nulls = 0
        for v in row:
            kind = type(v)
            if kind is str:
                parts.append(v)
            elif v is None:
                parts.append("\\N")
                nulls += 1
            elif kind is int:
                parts.append(str(v))
            elif kind is datetime and v.tzinfo is UTC:  # only UTC: equal instants in other
                text = _DATETIME_TEXT.get(v)
                if text is None:
                    if len(_DATETIME_TEXT) >= _CACHE_LIMIT:
                        _DATETIME_TEXT.clear()
                    text = _DATETIME_TEXT[v] = str(v)  # zones would share a key
                parts.append(text)
            elif kind is bool:
                parts.append(_BOOL_TEXT[v])
            elif kind is list:
                parts.append(_list_text(v))
            else:
                parts.append(_dumped_text(v))
        line = "\t".join(parts)
        if (
            line.count("\\") != nulls
            or line.count("\t") != len(parts) - 1
            or "\n" in line
            or "\r" in line
            or "\x00" in line
        ):
            line = _escaped_line(row)
        lines.append(line)
    lines.append("")
    return "\n".join(lines).encode()


def _list_text(value: list[Any]) -> str:
    key = tuple(value)
    if not all(type(x) is str for x in key):  # only text lists: True == 1 would share a key
        return _dumped_text(value)
    cached = _LIST_TEXT.get(key)
    if cached is None:
        if len(_LIST_TEXT) >= _CACHE_LIMIT:
            _LIST_TEXT.clear()
        cached = _LIST_TEXT[key] = _dumped_text(value)
    return cached


def _dumped_text(value: Any) -> str:
    """One value through psycopg's text dumper, as text (never None here: None is ``\\N``)."""
    dumped = Transformer().dump_sequence((value,), (PyFormat.TEXT,))[0]
    return "\\N" if dumped is None else bytes(dumped).decode()


def _escaped_line(row: tuple[Any, ...]) -> str:
    """A row with escapes (or a value psycopg refuses, such as a NUL in text: its error),
    through psycopg's dumpers value by value."""
    values = Transformer().dump_sequence(row, [PyFormat.TEXT] * len(row))
    return b"\t".join([b"\\N" if v is None else _escape(bytes(v)) for v in values]).decode()


def _escape(data: bytes) -> bytes:
    for raw, escaped in _ESCAPES:  # the backslash first
        data = data.replace(raw, escaped)
    return data


async def apply_staged(
    conn: psycopg.AsyncConnection[Any],
    staged: StagedBatch,
    examined: int,
    *,
    schema: str = "ledger",
    fresh: bool = False,
    refresh: bool = True,
    defer_queries: bool = True,
) -> BatchResult:
    """Apply a batch encoded by :func:`stage_merged` inside the open transaction.

    ``fresh``: the caller expects none of the batch's events to be in the ledger yet (a
    replay that began on an empty ledger), so billing and unsupported rows are copied
    straight into their tables, without a staging table and ``ON CONFLICT`` (~half their
    cost, issue 12). The unique keys still check it: if an event is there after all (the
    consumer applied it meanwhile), ``UniqueViolation`` aborts the transaction and the caller
    applies the batch again without ``fresh``.

    ``refresh=False``: the derived columns are left to the caller's one
    :func:`refresh_all_derived` after its last batch (a replay with deferred maintenance).

    ``defer_queries`` (default): the query_* triggers only queue the ids they touch
    (``ledger.query_defer``, migration 0021) and one ``ledger.query_flush()`` after the
    derived refresh recomputes each account, subscription's MRR steps and invoice once for
    the batch: the upserts and the derived refresh's UPDATEs fired the triggers one after the
    other, and an account was computed up to four times per batch, a new invoice twice
    (issue 12, seventh pass). The same rows either way (tests/ledger/queries/
    test_batch_refresh.py); ``False`` keeps the refresh per statement, for that comparison.
    """
    check_schema(schema)
    result = BatchResult(examined=examined)
    copies = staged.copies
    direct = {"billing_events", "unsupported_events"} if fresh else set()
    staged_tables = [t for t in copies if t not in direct]
    # Round trips, not statements, are what a batch waits for on a busy machine (~25 per
    # batch made the consumer's small batches cost ~1 ms per event at load 10, issue 12):
    # the lock and the staging tables go in one, every INSERT ... SELECT in one more.
    statements: list[str] = []  # parameterless, sent together after the COPYs
    written: list[str] = []  # the table each of those statements writes, in order
    changed: set[str] = set()  # tables with a row inserted or updated by this batch
    async with conn.cursor() as cur:
        # The lock key is a checked identifier: a literal, so no parameter (one simple query).
        lock = f"SELECT pg_advisory_xact_lock(hashtext('ledger:{schema}'));"
        if defer_queries:
            lock += _DEFER_QUERIES
        await cur.execute(lock + _prepare_stages_sql(staged_tables))
        # A payment method or tax id can move away from a customer (detached): that customer's
        # derived columns change too, so it counts as touched (read before the upserts).
        previous_owners = await _stored_customers(cur, schema, staged.keys) if refresh else set()
        if "billing_events" in direct and "billing_events" in copies:
            data = copies["billing_events"]
            await _copy(cur, f"{schema}.billing_events", BILLING_EVENT_COLUMNS, data)
            result.applied = staged.rows["billing_events"]
            changed.add("billing_events")
        elif "billing_events" in copies:
            await _stage(cur, "billing_events", BILLING_EVENT_COLUMNS, copies["billing_events"])
            cols = ", ".join(BILLING_EVENT_COLUMNS)
            statements.append(
                f"INSERT INTO {schema}.billing_events ({cols}) "  # noqa: S608 - identifiers checked
                f"SELECT {cols} FROM _stage_billing_events ORDER BY occurred_at, stripe_event_id "
                "ON CONFLICT (stripe_event_id) DO NOTHING"
            )
            written.append("billing_events")
        if "unsupported_events" in direct and "unsupported_events" in copies:
            data = copies["unsupported_events"]
            await _copy(cur, f"{schema}.unsupported_events", UNSUPPORTED_COLUMNS, data)
            result.unsupported = staged.rows["unsupported_events"]
            changed.add("unsupported_events")
        elif "unsupported_events" in copies:
            await _stage(
                cur, "unsupported_events", UNSUPPORTED_COLUMNS, copies["unsupported_events"]
            )
            cols = ", ".join(UNSUPPORTED_COLUMNS)
            statements.append(
                f"INSERT INTO {schema}.unsupported_events ({cols}) "  # noqa: S608
                f"SELECT {cols} FROM _stage_unsupported_events "
                "ON CONFLICT (stripe_event_id) DO NOTHING"
            )
            written.append("unsupported_events")
        for spec in READ_MODELS:
            if spec.name not in copies:
                continue
            await _stage(cur, spec.name, spec.columns, copies[spec.name])
            statements.append(spec.upsert_sql(schema, f"_stage_{spec.name}"))
            written.append(spec.name)
            result.touched[spec.name] = staged.rows[spec.name]
        if statements:
            await cur.execute(";\n".join(statements))
            # One result per statement, in order; an upsert counts only the rows it inserted
            # or changed (its DO UPDATE has a WHERE), so a replayed event counts nothing.
            for index, table in enumerate(written):
                if index:
                    cur.nextset()
                rows = max(cur.rowcount, 0)
                if rows:
                    changed.add(table)
                if table == "billing_events":
                    result.applied = rows
                elif table == "unsupported_events":
                    result.unsupported = rows
        if refresh:
            await _refresh_derived(cur, schema, staged.keys, previous_owners, changed)
        if defer_queries:
            await cur.execute(_FLUSH_QUERIES)
    return result


#: The batch's query_* refreshes queued by the triggers (``ledger.query_touch``, 0021) for the
#: rest of the transaction, until :data:`_FLUSH_QUERIES` refreshes each touched row once and
#: puts the triggers back to refreshing at once (a later statement of the caller's
#: transaction refreshes as any writer's does; whatever stays queued is flushed at COMMIT).
_DEFER_QUERIES = "SELECT set_config('ledger.query_defer', 'on', true);"
_FLUSH_QUERIES = "SELECT ledger.query_flush(); SELECT set_config('ledger.query_defer', 'off', true)"


#: Columns of each table's staging table (``_stage_<table>``).
_STAGED_COLUMNS: dict[str, Sequence[str]] = {
    "billing_events": BILLING_EVENT_COLUMNS,
    "unsupported_events": UNSUPPORTED_COLUMNS,
    **{spec.name: spec.columns for spec in READ_MODELS},
}


def _prepare_stages_sql(tables: Sequence[str]) -> str:
    """Statements that make the session's staging tables for ``tables`` exist and be empty.

    Created from the live table's column types; ON COMMIT DELETE ROWS keeps them empty
    between transactions, and a rolled-back transaction takes a new one away entirely. The
    ``DELETE`` only matters for a second batch in one transaction, and costs nothing on an
    empty table (a ``TRUNCATE`` per table and batch was a new file each time, and two
    statements per table were ~15% of a replay's writer time, issue 12).
    """
    statements = []
    for table in tables:
        stage = f"_stage_{table}"
        cols = ", ".join(q(c) for c in _STAGED_COLUMNS[table])
        statements.append(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS"  # noqa: S608
            f" SELECT {cols} FROM ledger.{table} WITH NO DATA; DELETE FROM {stage};"
        )
    return " ".join(statements)  # identifiers only, from tables.py


async def _stage(
    cur: psycopg.AsyncCursor[Any],
    table: str,
    columns: Sequence[str],
    data: bytes,
) -> None:
    """COPY ``data`` (COPY text rows) into the session's staging table for ``table``
    (prepared by :func:`_prepare_stages_sql`)."""
    await _copy(cur, f"_stage_{table}", columns, data)


async def _copy(
    cur: psycopg.AsyncCursor[Any], target: str, columns: Sequence[str], data: bytes
) -> None:
    """``COPY target FROM STDIN`` of ``data`` (COPY text rows, see :func:`copy_text`)."""
    cols = ", ".join(q(c) for c in columns)
    async with cur.copy(f"COPY {target} ({cols}) FROM STDIN") as copy:
        await copy.write(data)


#: Key lists by (table, column index), as :func:`stage_merged` computes them.
Keys = dict[tuple[str, int], list[Any]]


def _keys(keys: Keys, table: str, index: int = 0) -> list[Any]:
    return keys[(table, index)]


async def _stored_customers(
    cur: psycopg.AsyncCursor[Any],
    schema: str,
    models: Keys,
) -> set[str]:
    """Customers the batch's payment methods and tax ids belong to before the batch."""
    methods, tax_ids = _keys(models, "payment_methods"), _keys(models, "tax_ids")
    if not methods and not tax_ids:
        return set()
    await cur.execute(
        f"SELECT stripe_customer_id FROM {schema}.payment_methods"  # noqa: S608
        f" WHERE payment_method_id = ANY(%b) AND stripe_customer_id IS NOT NULL UNION"
        f" SELECT stripe_customer_id FROM {schema}.tax_ids"
        f" WHERE tax_id = ANY(%b) AND stripe_customer_id IS NOT NULL",
        (methods, tax_ids),
    )
    return {str(row[0]) for row in await cur.fetchall()}


# The id lists of the refresh statements travel as binary ``text[]`` (``ANY(%b)``): with
# ``%s`` psycopg dumps a list as escaped text, a regular expression per element, which was
# ~20% of the writer's own CPU (issue 12).


async def _refresh_derived(
    cur: psycopg.AsyncCursor[Any],
    schema: str,
    touched: Keys,
    previous_owners: set[str],
    changed: Collection[str],
) -> None:
    """Recompute derived columns for the keys of the tables this batch changed, from the
    tables alone.

    ``changed``: the tables with a row inserted or updated. Derived columns are a function of
    those rows, and every committed batch leaves them up to date (a bulk replay that defers
    them leaves its marker, and the next replay refreshes everything), so the keys of a table
    whose rows stayed as they were need nothing, and a refresh left without keys does not run:
    a redelivered message or an idempotent replay, whose upserts change nothing, pays no
    refresh (the largest share of the ledger backend's time in a second replay of 1M events,
    issue 12, ninth pass). The previous owners matter only if a payment method or tax id
    moved, i.e. changed.
    """
    models = {key: ids if key[0] in changed else [] for key, ids in touched.items()}
    owners = previous_owners if _keys(models, "payment_methods") or _keys(models, "tax_ids") else ()
    customers = sorted(
        {
            *_keys(models, "accounts"),
            *_keys(models, "payment_methods", 1),
            *_keys(models, "tax_ids", 1),
            *owners,
        }
    )
    methods = _keys(models, "payment_methods")
    if customers or methods:
        await cur.execute(
            ACCOUNTS_REFRESH.format(s=schema, keys=_ACCOUNT_KEYS), (customers, methods)
        )
    subscriptions = sorted(
        {*_keys(models, "subscriptions"), *_keys(models, "subscription_schedules", 1)}
    )
    if subscriptions:
        await cur.execute(
            SUBSCRIPTIONS_REFRESH.format(s=schema, keys=_SUBSCRIPTION_KEYS), (subscriptions,)
        )
    invoices = sorted(
        {
            *_keys(models, "payments"),
            *_keys(models, "invoice_payments", 1),
            *_keys(models, "credit_notes", 1),
        }
    )
    if invoices:
        await cur.execute(PAYMENT_INTENT_REFRESH.format(s=schema, keys=_INVOICE_KEYS), (invoices,))
    refund_pis = sorted({*_keys(models, "refunds", 2), *_keys(models, "charges", 1)})
    refund_charges = sorted({*_keys(models, "refunds", 1), *_keys(models, "charges")})
    if invoices or refund_pis or refund_charges:
        await cur.execute(
            PAYMENTS_REFRESH.format(s=schema, keys=_PAYMENT_KEYS),
            (invoices, refund_pis, refund_charges),
        )


async def refresh_all_derived(cur: psycopg.AsyncCursor[Any], schema: str = "ledger") -> None:
    """Recompute the derived columns of EVERY row: the per-batch refresh's statements with
    the key filter left out. After a bulk replay this one set-based pass replaces a refresh
    per batch, which recomputed an invoice once per batch that touched it (issue 12)."""
    check_schema(schema)
    for statement in (
        ACCOUNTS_REFRESH,
        SUBSCRIPTIONS_REFRESH,
        PAYMENT_INTENT_REFRESH,
        PAYMENTS_REFRESH,
    ):
        await cur.execute(statement.format(s=schema, keys="true"))  # type: ignore[arg-type]


# Which rows each refresh recomputes for a batch: the keys it touched (``{keys}`` below).
_ACCOUNT_KEYS = "a2.stripe_customer_id = ANY(%b) OR a2.default_payment_method_id = ANY(%b)"
_SUBSCRIPTION_KEYS = "s2.subscription_id = ANY(%b)"
_INVOICE_KEYS = "p2.invoice_id = ANY(%b)"
_PAYMENT_KEYS = (
    "p2.invoice_id = ANY(%b) OR p2.payment_intent_id = ANY(%b) OR p2.invoice_charge_id = ANY(%b)"
)


# The default payment method when the customer names one, else the newest one attached to
# the customer; the newest tax id not deleted.
ACCOUNTS_REFRESH = """
UPDATE {s}.accounts a
SET payment_method_brand = d.brand, payment_method_last4 = d.last4,
    payment_method_exp_month = d.exp_month, payment_method_exp_year = d.exp_year,
    tax_id = d.tax_value
FROM (
    SELECT a2.stripe_customer_id, pm.brand, pm.last4, pm.exp_month, pm.exp_year,
           tx.value AS tax_value
    FROM {s}.accounts a2
    LEFT JOIN LATERAL (
        SELECT p.brand, p.last4, p.exp_month, p.exp_year FROM {s}.payment_methods p
        WHERE p.payment_method_id = a2.default_payment_method_id
           OR (a2.default_payment_method_id IS NULL
               AND p.stripe_customer_id = a2.stripe_customer_id)
        ORDER BY (p.payment_method_id = a2.default_payment_method_id) DESC NULLS LAST,
                 p.state_event_created DESC, p.state_event_id DESC
        LIMIT 1
    ) pm ON true
    LEFT JOIN LATERAL (
        SELECT t.value FROM {s}.tax_ids t
        WHERE t.stripe_customer_id = a2.stripe_customer_id AND NOT t.deleted
        ORDER BY t.state_event_created DESC, t.state_event_id DESC
        LIMIT 1
    ) tx ON true
    WHERE {keys}
) d
WHERE a.stripe_customer_id = d.stripe_customer_id
  AND (a.payment_method_brand, a.payment_method_last4, a.payment_method_exp_month,
       a.payment_method_exp_year, a.tax_id)
      IS DISTINCT FROM (d.brand, d.last4, d.exp_month, d.exp_year, d.tax_value)
"""

# A change queued on the subscription itself (pending_update, expanded schedule) wins; else
# the newest schedule still in force with a following phase.
SUBSCRIPTIONS_REFRESH = """
UPDATE {s}.subscriptions sub
SET scheduled_plan = d.plan, scheduled_mrr = d.mrr, scheduled_change_at = d.at
FROM (
    SELECT s2.subscription_id,
           COALESCE(s2.pending_plan, sch.next_plan) AS plan,
           CASE WHEN s2.pending_plan IS NOT NULL THEN s2.pending_mrr ELSE sch.next_mrr END
               AS mrr,
           CASE WHEN s2.pending_plan IS NOT NULL THEN s2.pending_change_at
                ELSE sch.next_phase_start END AS at
    FROM {s}.subscriptions s2
    LEFT JOIN LATERAL (
        SELECT x.next_plan, x.next_mrr, x.next_phase_start FROM {s}.subscription_schedules x
        WHERE x.subscription_id = s2.subscription_id
          AND x.status IN ('not_started', 'active') AND x.next_plan IS NOT NULL
        ORDER BY x.state_event_created DESC, x.state_event_id DESC
        LIMIT 1
    ) sch ON true
    WHERE {keys}
) d
WHERE sub.subscription_id = d.subscription_id
  AND (sub.scheduled_plan, sub.scheduled_mrr, sub.scheduled_change_at)
      IS DISTINCT FROM (d.plan, d.mrr, d.at)
"""

# The invoice's own payment intent (legacy shapes) else its newest invoice_payment (basil).
PAYMENT_INTENT_REFRESH = """
UPDATE {s}.payments p
SET payment_intent_id = d.pi
FROM (
    SELECT p2.invoice_id, COALESCE(p2.invoice_payment_intent_id, ip.payment_intent_id) AS pi
    FROM {s}.payments p2
    LEFT JOIN LATERAL (
        SELECT i.payment_intent_id FROM {s}.invoice_payments i
        WHERE i.invoice_id = p2.invoice_id AND i.payment_intent_id IS NOT NULL
        ORDER BY i.state_event_created DESC, i.state_event_id DESC
        LIMIT 1
    ) ip ON true
    WHERE {keys}
) d
WHERE p.invoice_id = d.invoice_id AND p.payment_intent_id IS DISTINCT FROM d.pi
"""

# Refunds (by payment intent or charge) and credit notes of each touched invoice: totals,
# and the date of the most recent reversal (the day revenue goes down). The refunds recorded
# (refund objects) and the charges' own cumulative ``amount_refunded`` describe the same
# money, so the larger of the two counts, never their sum (issue 6.7).
#
# A refund or charge belongs to an invoice by its payment intent or by its charge: two
# equality probes (their own indexes), the second leaving out what the first found, instead
# of one OR. On a never-analyzed ledger (every new deployment fed live) the planner answered
# the OR on refunds with a sequential scan per payment (bench/RESULTS.md, "Sixth pass"); an
# equality on an indexed column is an index probe with or without statistics. The old
# statement is the differential test's oracle (tests/ledger/queries/payments_refresh_oracle.py).
PAYMENTS_REFRESH = """
UPDATE {s}.payments p
SET amount_refunded = d.refunded, refunded_at = d.refunded_at,
    amount_credited = d.credited, credit_noted_at = d.credit_noted_at
FROM (
    SELECT p2.invoice_id,
           GREATEST(COALESCE(r.amount, 0), COALESCE(ch.amount, 0)) AS refunded,
           CASE WHEN COALESCE(ch.amount, 0) > COALESCE(r.amount, 0) THEN ch.at ELSE r.at END
               AS refunded_at,
           COALESCE(c.amount, 0) AS credited, c.at AS credit_noted_at
    FROM {s}.payments p2
    LEFT JOIN LATERAL (
        SELECT sum(x.amount) AS amount, max(x.refund_created) AS at
        FROM (
            SELECT x1.amount, x1.refund_created, x1.status FROM {s}.refunds x1
            WHERE x1.payment_intent_id = p2.payment_intent_id
            UNION ALL
            SELECT x2.amount, x2.refund_created, x2.status FROM {s}.refunds x2
            WHERE x2.charge_id = p2.invoice_charge_id
              AND (x2.payment_intent_id IS NULL
                   OR x2.payment_intent_id IS DISTINCT FROM p2.payment_intent_id)
        ) x
        WHERE x.status IS NULL OR x.status NOT IN ('failed', 'canceled')
        HAVING count(*) > 0
    ) r ON true
    LEFT JOIN LATERAL (
        SELECT sum(x.amount_refunded) AS amount, max(x.refunded_at) AS at
        FROM (
            SELECT x1.amount_refunded, x1.refunded_at FROM {s}.charges x1
            WHERE x1.payment_intent_id = p2.payment_intent_id
            UNION ALL
            SELECT x2.amount_refunded, x2.refunded_at FROM {s}.charges x2
            WHERE x2.charge_id = p2.invoice_charge_id
              AND (x2.payment_intent_id IS NULL
                   OR x2.payment_intent_id IS DISTINCT FROM p2.payment_intent_id)
        ) x
        HAVING count(*) > 0
    ) ch ON true
    LEFT JOIN LATERAL (
        SELECT sum(COALESCE(n.total, n.amount)) AS amount, max(n.credit_note_created) AS at
        FROM {s}.credit_notes n
        WHERE n.invoice_id = p2.invoice_id AND n.status IS DISTINCT FROM 'void'
        HAVING count(*) > 0
    ) c ON true
    WHERE {keys}
) d
WHERE p.invoice_id = d.invoice_id
  AND (p.amount_refunded, p.refunded_at, p.amount_credited, p.credit_noted_at)
      IS DISTINCT FROM (d.refunded, d.refunded_at, d.credited, d.credit_noted_at)
"""
