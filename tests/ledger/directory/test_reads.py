"""DirectoryService reads over gRPC: search, tenant filter, keyset paging, GetUser history,
the 30-day login window, the 24-hour active-session rule and soft-delete visibility."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from billing.common.v1 import common_pb2
from billing.ledger.v1 import directory_pb2 as pb

from tests.ledger.directory.conftest import NOW, add_tenant, add_user, login, ts

if TYPE_CHECKING:
    from tests.ledger.directory.conftest import Stub

pytestmark = pytest.mark.integration


async def emails(stub: Stub, **fields: object) -> list[str]:
    page = await stub.ListUsers(pb.ListUsersRequest(**fields))  # type: ignore[arg-type]
    return [summary.user.email for summary in page.users]


async def all_pages(stub: Stub, size: int, **fields: object) -> tuple[list[str], int, int]:
    """Every email over every page, the number of pages and the reported total."""
    seen: list[str] = []
    token, pages, total = "", 0, -1
    while True:
        request = pb.ListUsersRequest(**fields)  # type: ignore[arg-type]
        request.page.CopyFrom(common_pb2.PageRequest(page_size=size, page_token=token))
        page = await stub.ListUsers(request)
        pages += 1
        total = page.page.total_count
        assert len(page.users) <= size
        seen.extend(summary.user.email for summary in page.users)
        token = page.page.next_page_token
        if not token:
            return seen, pages, total


async def seed_people(stub: Stub) -> None:
    await add_tenant(stub, "t_acme", "Acme Rockets")
    await add_tenant(stub, "t_globex", "Globex 100%_Club")
    await add_user(stub, "u_ada", "ada@example.com", "Ada", "Lovelace", tenants=("t_acme",))
    await add_user(stub, "u_alan", "alan@turing.org", "Alan", "Turing", tenants=("t_globex",))
    await add_user(
        stub, "u_grace", "grace@navy.mil", "Grace", "Hopper", tenants=("t_acme", "t_globex")
    )
    await add_user(stub, "u_solo", "solo@example.com", "Han", "Solo")  # no membership yet


async def test_search_by_email_names_and_tenant_name(directory: Stub):
    await seed_people(directory)
    assert await emails(directory) == [
        "ada@example.com",
        "alan@turing.org",
        "grace@navy.mil",
        "solo@example.com",
    ]
    assert await emails(directory, query="EXAMPLE.com") == ["ada@example.com", "solo@example.com"]
    assert await emails(directory, query="hopp") == ["grace@navy.mil"]
    assert await emails(directory, query="alan turing") == ["alan@turing.org"]
    assert await emails(directory, query="rocket") == ["ada@example.com", "grace@navy.mil"]
    assert await emails(directory, query="100%_") == ["alan@turing.org", "grace@navy.mil"]
    assert await emails(directory, query="%") == ["alan@turing.org", "grace@navy.mil"]
    assert await emails(directory, query="nobody") == []
    assert await emails(directory, tenant_id="t_globex") == ["alan@turing.org", "grace@navy.mil"]
    assert await emails(directory, tenant_id="t_globex", query="ada") == []
    page = await directory.ListUsers(pb.ListUsersRequest(query="grace"))
    assert list(page.users[0].tenant_names) == ["Acme Rockets", "Globex 100%_Club"]
    assert page.page.total_count == 1


async def test_paging_over_several_pages_in_both_sort_orders(directory: Stub):
    await add_tenant(directory, "t", "Tenant")
    # created_at runs opposite to email order, with ties, so the two sorts really differ.
    for i in range(11):
        await add_user(
            directory,
            f"u{i:02d}",
            f"user{i:02d}@example.com",
            created_at=NOW - timedelta(days=i // 2),
            tenants=("t",),
        )
    by_email = [f"user{i:02d}@example.com" for i in range(11)]
    seen, pages, total = await all_pages(directory, 3)
    assert (seen, pages, total) == (by_email, 4, 11)
    seen, pages, _ = await all_pages(directory, 4, descending=True)
    assert (seen, pages) == (list(reversed(by_email)), 3)
    # created ascending: oldest first, ties broken by user_id.
    expected = sorted(by_email, key=lambda e: (-(int(e[4:6]) // 2), e))
    seen, pages, _ = await all_pages(directory, 2, sort=pb.USER_SORT_CREATED_AT)
    assert (seen, pages) == (expected, 6)
    seen, _, _ = await all_pages(directory, 5, sort=pb.USER_SORT_CREATED_AT, descending=True)
    assert seen == list(reversed(expected))
    seen, pages, total = await all_pages(directory, 2, query="user0")
    assert (seen, pages, total) == (by_email[:10], 5, 10)


async def test_soft_deleted_tenant_hides_from_lists_and_counts_but_not_history(directory: Stub):
    await seed_people(directory)
    await login(directory, "u_alan", NOW - timedelta(hours=1), tenant_id="t_globex")
    await login(directory, "u_grace", NOW - timedelta(hours=1), tenant_id="t_globex")
    await directory.RecordSession(
        pb.RecordSessionRequest(
            session_id="s_alan", user_id="u_alan", started_at=ts(NOW - timedelta(hours=1))
        )
    )
    window = pb.DirectoryStatsRequest(
        since=ts(NOW - timedelta(days=1)), until=ts(NOW), as_of=ts(NOW)
    )
    before = await directory.DirectoryStats(window)
    assert (
        before.active_users,
        before.active_sessions,
        before.total_users,
        before.total_tenants,
    ) == (2, 1, 4, 2)

    await directory.SoftDeleteTenant(pb.SoftDeleteTenantRequest(tenant_id="t_globex"))

    # Alan's only tenant is gone: he leaves lists and counts; Grace stays through Acme.
    assert await emails(directory) == ["ada@example.com", "grace@navy.mil", "solo@example.com"]
    assert await emails(directory, tenant_id="t_globex") == []
    assert await emails(directory, query="globex") == []
    grace = await directory.ListUsers(pb.ListUsersRequest(query="grace"))
    assert list(grace.users[0].tenant_names) == ["Acme Rockets"]
    after = await directory.DirectoryStats(window)
    assert (
        after.active_users,
        after.active_sessions,
        after.total_users,
        after.total_tenants,
    ) == (0, 0, 3, 1)

    history = await directory.GetUser(pb.GetUserRequest(user_id="u_alan", as_of=ts(NOW)))
    assert [(m.tenant_id, m.tenant_name) for m in history.memberships] == [
        ("t_globex", "Globex 100%_Club")
    ]
    assert history.memberships[0].HasField("tenant_deleted_at")
    assert [entry.tenant_id for entry in history.recent_logins] == ["t_globex"]
    assert [s.session_id for s in history.sessions] == ["s_alan"]


async def test_get_user_shows_memberships_30_days_of_logins_and_sessions(directory: Stub):
    await add_tenant(directory, "t_b", "Beta")
    await add_tenant(directory, "t_a", "Alpha")
    await add_user(directory, "u1", "one@example.com", "One", "User", tenants=("t_b", "t_a"))
    await add_user(directory, "u2", "two@example.com")
    day = timedelta(days=1)
    await login(directory, "u1", NOW - 31 * day, login_id="too-old")
    await login(directory, "u1", NOW - 30 * day, login_id="edge")
    await login(directory, "u1", NOW - 2 * day, login_id="failed", outcome=pb.LOGIN_OUTCOME_FAILURE)
    await login(directory, "u1", NOW - day, login_id="recent", tenant_id="t_a")
    await login(directory, "u1", NOW + day, login_id="after-as-of")
    await login(directory, "u2", NOW, login_id="someone-else")
    await directory.RecordSession(
        pb.RecordSessionRequest(
            session_id="s_live",
            user_id="u1",
            started_at=ts(NOW - 2 * day),
            last_seen_at=ts(NOW - timedelta(hours=3)),
        )
    )
    await directory.RecordSession(
        pb.RecordSessionRequest(
            session_id="s_revoked", user_id="u1", started_at=ts(NOW - timedelta(hours=2))
        )
    )
    await directory.RevokeSession(
        pb.RevokeSessionRequest(
            session_id="s_revoked", revoked_at=ts(NOW - timedelta(hours=1)), reason="logout"
        )
    )

    detail = await directory.GetUser(pb.GetUserRequest(user_id="u1", as_of=ts(NOW)))
    assert detail.user.email == "one@example.com"
    assert [m.tenant_name for m in detail.memberships] == ["Alpha", "Beta"]
    assert [entry.login_id for entry in detail.recent_logins] == ["recent", "failed", "edge"]
    assert detail.recent_logins[1].outcome == pb.LOGIN_OUTCOME_FAILURE
    assert not detail.recent_logins_truncated
    assert [(s.session_id, s.active) for s in detail.sessions] == [
        ("s_revoked", False),
        ("s_live", True),
    ]
    assert detail.sessions[0].revocation_reason == "logout"
    assert detail.as_of == ts(NOW)

    # A month later the same logins have left the window.
    later = await directory.GetUser(pb.GetUserRequest(user_id="u1", as_of=ts(NOW + 40 * day)))
    assert list(later.recent_logins) == []
    assert not any(s.active for s in later.sessions)
    listed = await directory.ListUsers(pb.ListUsersRequest(query="one@"))
    assert listed.users[0].last_login_at == ts(NOW + day)


async def test_stats_active_users_and_the_24_hour_session_rule(directory: Stub):
    await add_tenant(directory, "t", "Tenant")
    for name in ["a", "b", "c", "d"]:
        await add_user(directory, f"u_{name}", f"{name}@example.com", tenants=("t",))
    hour = timedelta(hours=1)
    since, until = NOW - 24 * hour, NOW
    await login(directory, "u_a", since)  # inclusive start
    await login(directory, "u_a", since + hour)  # same user twice
    await login(directory, "u_b", until - hour, outcome=pb.LOGIN_OUTCOME_FAILURE)
    await login(directory, "u_c", until)  # exclusive end
    await login(directory, "u_d", since + 2 * hour, outcome=pb.LOGIN_OUTCOME_LOCKED)
    await login(directory, "u_b", since - hour)  # before the period

    sessions = {
        # session: (user, started, last seen)
        "fresh": ("u_a", NOW - 30 * hour, NOW - hour),
        "at-as-of": ("u_b", NOW - hour, NOW),
        "boundary": ("u_c", NOW - 30 * hour, NOW - 24 * hour),  # exactly 24 h: stale
        "stale": ("u_c", NOW - 50 * hour, NOW - 25 * hour),
        "future": ("u_d", NOW + hour, NOW + hour),
        "revoked": ("u_d", NOW - 2 * hour, NOW - hour),
        "revoked-later": ("u_d", NOW - 3 * hour, NOW - 2 * hour),
    }
    for session_id, (user_id, started, seen) in sessions.items():
        await directory.RecordSession(
            pb.RecordSessionRequest(
                session_id=session_id,
                user_id=user_id,
                started_at=ts(started),
                last_seen_at=ts(seen),
            )
        )
    await directory.RevokeSession(
        pb.RevokeSessionRequest(session_id="revoked", revoked_at=ts(NOW - hour / 2))
    )
    await directory.RevokeSession(
        pb.RevokeSessionRequest(session_id="revoked-later", revoked_at=ts(NOW + hour))
    )

    stats = await directory.DirectoryStats(
        pb.DirectoryStatsRequest(since=ts(since), until=ts(until), as_of=ts(NOW))
    )
    assert (stats.active_users, stats.active_sessions, stats.total_users, stats.total_tenants) == (
        1,
        3,  # fresh, at-as-of, revoked-later (still live at as_of)
        4,
        1,
    )
    # as_of defaults to until.
    default = await directory.DirectoryStats(
        pb.DirectoryStatsRequest(since=ts(since), until=ts(until))
    )
    assert default.active_sessions == 3
    moved = await directory.DirectoryStats(
        pb.DirectoryStatsRequest(since=ts(since), until=ts(until), as_of=ts(NOW + 2 * hour))
    )
    # fresh, at-as-of and future (started by then); revoked-later is revoked by then.
    assert moved.active_sessions == 3
    wider = await directory.DirectoryStats(
        pb.DirectoryStatsRequest(since=ts(since - 2 * hour), until=ts(until + hour))
    )
    assert wider.active_users == 3  # u_a, u_b (earlier success) and u_c
