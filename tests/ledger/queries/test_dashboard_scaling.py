"""Migration 0019's read path gives the answer its definition gives.

The dashboard's active sessions now sum the whole UTC hours of their 24-hour window from
``query_session_hourly`` (kept by a row trigger on sessions and statement triggers on
``query_unlisted_users``) and read row by row only the partial hours, the sessions seen exactly
at the window's open start and those revoked after ``as_of``. It must equal the statement it
replaces, kept here as SQL (the oracle: the 24-hour range of every session, the unlisted users
computed from every membership), for ``as_of`` on the hour, off it, exactly at a session's last
sighting or an hour before one, in the past and after the last session; after sessions written
in random order (single rows, multi-row statements, RecordSession's upsert touching within its
hour and across hours, moving back never), revoked before and after ``as_of``, deleted and
moved to another user; after users stop and start being listed (tenants deleted and restored,
memberships added and removed); and after ``query_support_rebuild()``, which must recount the
hours to exactly the rows the triggers kept.

The account counts and the plan distribution now come from one pass over
``query_account_mix`` (``account_mix``): equal to the two statements they replace
(kept below as the oracle: ``_two_statement_counts``, ``_two_statement_plans``) for periods
of every length, now and in the past, after customers and subscriptions written in random
order, plan changes, a deletion, an unknown creation day, and after a rebuild.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.common.db import make_async_engine
from services.ledger.queries import dashboard
from services.ledger.queries.inputs import Window
from services.ledger.queries.tables import query_account_mix as qam
from tests.ledger.queries.conftest import NOW, Ledger, days_ago
from tests.ledger.queries.test_query_scaling import _directory
from tests.ledger.queries.test_query_scaling2 import OLD_ACTIVE_SESSIONS_SQL

pytestmark = pytest.mark.integration

# The oracle, OLD_ACTIVE_SESSIONS_SQL: the statement before 0016 and 0019 (every session seen in
# the 24 hours, the unlisted users computed from the memberships), kept once in 0016's test.

# query_session_hourly's definition, counted from scratch.
HOURS_SQL = """
SELECT date_trunc('hour', last_seen_at, 'UTC') AS hour, count(*) FROM ledger.sessions
WHERE revoked_at IS NULL
  AND user_id NOT IN (SELECT user_id FROM ledger.query_unlisted_users)
GROUP BY 1 ORDER BY 1
"""

UPSERT_SQL = """
INSERT INTO ledger.sessions AS s (session_id, user_id, started_at, last_seen_at)
VALUES (%s, %s, %s, %s)
ON CONFLICT (session_id) DO UPDATE
SET started_at = least(s.started_at, EXCLUDED.started_at),
    last_seen_at = greatest(s.last_seen_at, EXCLUDED.last_seen_at)
WHERE s.user_id = EXCLUDED.user_id
"""


def _as_ofs(ledger: Ledger) -> list[datetime]:
    """On the hour, off it, at and around sessions' sightings, past and future."""
    seen = [r[0] for r in ledger.execute("SELECT last_seen_at FROM ledger.sessions ORDER BY 1")]
    picks = [NOW, NOW - timedelta(hours=5), NOW - timedelta(minutes=17),
             NOW - timedelta(hours=30, minutes=59, seconds=59), NOW + timedelta(days=3),
             NOW - timedelta(days=10)]
    for at in seen[:: max(1, len(seen) // 6)]:
        picks += [at, at + timedelta(hours=24), at - timedelta(microseconds=1)]
    return picks


async def _compare(database_url: str, ledger: Ledger) -> int:
    """Every as_of: the hour path equals the oracle and the range; the hours their definition."""
    hours = ledger.execute("SELECT hour, n FROM ledger.query_session_hourly ORDER BY 1")
    assert hours == ledger.execute(HOURS_SQL)
    engine = make_async_engine(database_url)
    total = 0
    try:
        async with engine.connect() as conn:
            for as_of in _as_ofs(ledger):
                fast = await dashboard.active_sessions(conn, as_of)
                oracle = (await conn.execute(text(OLD_ACTIVE_SESSIONS_SQL), {"as_of": as_of}))
                assert fast == oracle.scalar_one(), as_of
                assert fast == await dashboard.active_sessions_in_range(conn, as_of), as_of
                total += fast
    finally:
        await engine.dispose()
    return total


def _sessions(ledger: Ledger, rng: random.Random, users: list[str], prefix: str) -> None:
    """60 sessions in random order, some on hour boundaries and at NOW - 24 h exactly, some
    written several to a statement; then touches (same hour, across hours, backwards)."""
    rows: list[tuple[Any, ...]] = []
    for i in range(60):
        if i % 10 == 0:
            seen = NOW - timedelta(hours=rng.randrange(0, 48))  # on the hour
        elif i % 10 == 1:
            seen = NOW - timedelta(hours=24)  # exactly at the open start of NOW's window
        else:
            seen = NOW - timedelta(hours=rng.uniform(0, 48))
        rows.append((f"{prefix}{i}", rng.choice(users), seen - timedelta(hours=2), seen))
    rng.shuffle(rows)
    for row in rows[:30]:
        ledger.execute("INSERT INTO ledger.sessions (session_id, user_id, started_at,"
                       " last_seen_at) VALUES (%s, %s, %s, %s)", row)
    ledger.execute(  # the rest as one statement
        "INSERT INTO ledger.sessions (session_id, user_id, started_at, last_seen_at)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[])",
        tuple(list(column) for column in zip(*rows[30:], strict=True)),
    )
    for session_id, user, started, seen in rng.sample(rows, 40):
        step = rng.choice([timedelta(minutes=1), timedelta(minutes=50), timedelta(hours=3),
                           -timedelta(hours=2)])  # backwards: greatest() keeps the sighting
        ledger.execute(UPSERT_SQL, (session_id, user, started, seen + step))


async def test_active_sessions_from_hours_equal_the_range(
    ledger: Ledger, database_url: str
) -> None:
    rng = random.Random(19)
    users = _directory(ledger, rng)  # tenants t0, t1 deleted; users in 0-2 tenants each
    _sessions(ledger, rng, users, "s")
    assert ledger.execute("SELECT count(*) FROM ledger.query_unlisted_users")[0][0] > 0
    first = await _compare(database_url, ledger)
    assert first > 0

    # revocations before and after as_of (one moved back to not revoked), deletions, a session
    # handed to another user, a multi-row touch across hours
    ids = [r[0] for r in ledger.execute("SELECT session_id FROM ledger.sessions ORDER BY 1")]
    rng.shuffle(ids)
    for session_id in ids[:12]:
        ledger.execute("UPDATE ledger.sessions SET revoked_at = last_seen_at + %s"
                       " WHERE session_id = %s",
                       (timedelta(hours=rng.choice([0, 1, 5, 30])), session_id))
    ledger.execute("UPDATE ledger.sessions SET revoked_at = NULL WHERE session_id = %s",
                   (ids[0],))
    ledger.execute("DELETE FROM ledger.sessions WHERE session_id = ANY(%s)", (ids[12:16],))
    ledger.execute("UPDATE ledger.sessions SET user_id = %s WHERE session_id = %s",
                   (users[1], ids[16]))
    ledger.execute("UPDATE ledger.sessions SET last_seen_at = last_seen_at + interval '90 min'"
                   " WHERE session_id = ANY(%s)", (ids[17:25],))
    second = await _compare(database_url, ledger)
    assert second != first  # the writes did move the count

    # users stop and start being listed
    ledger.execute("UPDATE ledger.tenants SET deleted_at = NULL WHERE tenant_id = 't0'")
    ledger.execute("UPDATE ledger.tenants SET deleted_at = %s WHERE tenant_id = 't4'",
                   (days_ago(2),))
    ledger.execute(
        "INSERT INTO ledger.memberships (user_id, tenant_id, role, status)"
        " SELECT user_id, 't1', 'member', 'active' FROM ledger.users u WHERE NOT EXISTS"
        " (SELECT 1 FROM ledger.memberships m WHERE m.user_id = u.user_id)"
    )
    ledger.execute("DELETE FROM ledger.memberships WHERE user_id = %s", (users[3],))
    third = await _compare(database_url, ledger)
    assert third != second

    # the rebuild recounts the hours to the same rows; writes after it are kept as before
    live = ledger.execute("SELECT hour, n FROM ledger.query_session_hourly ORDER BY 1")
    ledger.execute("SELECT ledger.query_support_rebuild()")
    assert ledger.execute("SELECT hour, n FROM ledger.query_session_hourly ORDER BY 1") == live
    await _compare(database_url, ledger)
    _sessions(ledger, rng, users, "r")
    await _compare(database_url, ledger)


async def test_a_touch_within_its_hour_writes_no_count(ledger: Ledger) -> None:
    """The update trigger's WHEN: RecordSession refreshing a session inside the hour it was
    last seen in leaves query_session_hourly's row untouched (same row version); crossing
    into the next hour moves the session between the hours."""
    ledger.execute("INSERT INTO ledger.users (user_id, email, created_at) VALUES"
                   " ('u', 'u@example.com', %s)", (days_ago(10),))
    seen = NOW - timedelta(hours=3, minutes=50)
    ledger.execute(UPSERT_SQL, ("s", "u", seen, seen))
    hour = NOW - timedelta(hours=4)

    def version() -> list[tuple[Any, ...]]:
        return ledger.execute("SELECT xmin::text, n FROM ledger.query_session_hourly"
                              " WHERE hour = %s", (hour,))

    before = version()
    assert [n for _, n in before] == [1]
    ledger.execute(UPSERT_SQL, ("s", "u", seen, seen + timedelta(minutes=40)))
    assert version() == before
    ledger.execute(UPSERT_SQL, ("s", "u", seen, seen + timedelta(minutes=55)))
    assert version() == []
    assert ledger.execute("SELECT hour, n FROM ledger.query_session_hourly") == [
        (hour + timedelta(hours=1), 1)
    ]


# The oracle of ``dashboard.account_mix``: the two statements the dashboard ran before it (the
# counts, then the plans), each its own scan of query_account_mix.
async def _two_statement_counts(conn: AsyncConnection, w: Window) -> dashboard.AccountCounts:
    day = qam.c.created_day

    def accounts(*where: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(qam.c.n).filter(*where), 0)

    row = (
        await conn.execute(
            select(
                accounts(day < w.end_day),
                accounts(day < w.start_day),
                accounts(day >= w.start_day, day < w.end_day),
                accounts(day >= w.prior_start_day, day < w.start_day),
            )
        )
    ).one()
    return dashboard.AccountCounts(*(int(v) for v in row))


async def _two_statement_plans(conn: AsyncConnection, w: Window) -> list[Any]:
    return list(
        (
            await conn.execute(
                select(
                    qam.c.plan,
                    func.nullif(qam.c.currency, "").label("currency"),
                    func.sum(qam.c.n).label("accounts"),
                    func.sum(qam.c.committed_mrr).label("mrr"),
                )
                .where(qam.c.created_day < w.end_day)
                .group_by(qam.c.plan, qam.c.currency)
                .having(func.sum(qam.c.n) > 0)
            )
        ).all()
    )


async def _compare_mix(database_url: str) -> int:
    engine = make_async_engine(database_url)
    seen = 0
    try:
        async with engine.connect() as conn:
            for days in (1, 7, 30, 90):
                for back in (0, 10, 45, 400):
                    w = Window(NOW - timedelta(days=back), days)
                    counts, plans = await dashboard.account_mix(conn, w)
                    assert counts == await _two_statement_counts(conn, w), (days, back)
                    old = await _two_statement_plans(conn, w)

                    def rows(rs: list[Any]) -> set[tuple[Any, ...]]:
                        return {(r.plan, r.currency, int(r.accounts), int(r.mrr)) for r in rs}

                    assert rows(plans) == rows(old), (days, back)
                    seen += counts.new + len(plans)
    finally:
        await engine.dispose()
    return seen


async def test_account_mix_equals_the_two_statements(ledger: Ledger, database_url: str) -> None:
    rng = random.Random(12)
    order = list(range(50))
    rng.shuffle(order)
    for i in order:
        customer = f"cus_x{i}"
        ledger.customer(customer, name=f"Mix {i}", created_at=days_ago(rng.uniform(0, 200)),
                        currency=rng.choice(("USD", "EUR", "JPY", "GBP")))
        if i % 4:
            ledger.subscription(f"sub_x{i}", customer, plan=rng.choice(("Pro", "Team", "Max")),
                                mrr=rng.choice((0, 900, 4000)),
                                currency=rng.choice(("USD", "EUR")))
    first = await _compare_mix(database_url)
    assert first > 0
    ledger.execute("UPDATE ledger.subscriptions SET plan = 'Enterprise', committed_mrr = 9000"
                   " WHERE subscription_id IN ('sub_x1', 'sub_x2')")
    ledger.execute("UPDATE ledger.accounts SET deleted_at = %s"
                   " WHERE stripe_customer_id IN ('cus_x5', 'cus_x6')", (days_ago(1),))
    ledger.tenant("t_nocust", "No customer", days_ago(4))
    ledger.customer("cus_nodate", name="No date", created_at=None)  # type: ignore[arg-type]
    assert await _compare_mix(database_url) != first
    ledger.execute("SELECT ledger.query_support_rebuild()")
    await _compare_mix(database_url)
