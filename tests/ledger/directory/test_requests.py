"""Request validation and normalisation, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from billing.common.v1 import common_pb2
from billing.ledger.v1 import directory_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.paging import encode_token
from services.ledger.directory import requests
from services.ledger.directory.errors import InvalidArgument
from services.ledger.directory.inputs import UserSortKey
from services.ledger.directory.reads import escape_like
from services.ledger.directory.validation import normalise_email, normalise_ip, require_id


def test_email_is_lower_cased_and_checked():
    assert normalise_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    for bad in ["", "ada", "ada@", "@example.com", "ada@example", "a b@example.com", "a@@b.io"]:
        with pytest.raises(InvalidArgument):
            normalise_email(bad)


def test_ip_is_canonical_or_refused():
    assert normalise_ip("") is None
    assert normalise_ip(" 203.0.113.7 ") == "203.0.113.7"
    assert normalise_ip("2001:DB8:0:0::1") == "2001:db8::1"
    for bad in ["999.1.1.1", "localhost", "10.0.0.0/8"]:
        with pytest.raises(InvalidArgument):
            normalise_ip(bad)


def test_ids_are_required_and_clean():
    assert require_id(" t_1 ", "tenant_id") == "t_1"
    for bad in ["", "   ", "a\x00b", "x" * 256]:
        with pytest.raises(InvalidArgument):
            require_id(bad, "tenant_id")


def test_enums_refuse_unspecified_and_unknown_numbers():
    good = pb.UpsertMembershipRequest(
        user_id="u",
        tenant_id="t",
        role=pb.MEMBERSHIP_ROLE_ADMIN,
        status=pb.MEMBERSHIP_STATUS_PENDING,
    )
    parsed = requests.membership_input(good)
    assert (parsed.role, parsed.status) == ("admin", "pending")
    for role, status in [(0, 1), (1, 0), (99, 1), (1, 42)]:
        with pytest.raises(InvalidArgument):
            requests.membership_input(
                pb.UpsertMembershipRequest(
                    user_id="u",
                    tenant_id="t",
                    role=role,  # type: ignore[arg-type]
                    status=status,  # type: ignore[arg-type]
                )
            )


def test_login_needs_time_method_and_outcome():
    at = Timestamp(seconds=1_700_000_000)
    base = {
        "user_id": "u",
        "at": at,
        "method": pb.LOGIN_METHOD_SSO,
        "outcome": pb.LOGIN_OUTCOME_LOCKED,
    }
    parsed = requests.login_input(pb.RecordLoginRequest(**base))  # type: ignore[arg-type]
    assert (parsed.method, parsed.outcome, parsed.login_id, parsed.tenant_id) == (
        "sso",
        "locked",
        None,
        None,
    )
    for missing in ["user_id", "at", "method", "outcome"]:
        fields = {k: v for k, v in base.items() if k != missing}
        with pytest.raises(InvalidArgument):
            requests.login_input(pb.RecordLoginRequest(**fields))  # type: ignore[arg-type]


def test_session_last_seen_defaults_to_start_and_cannot_precede_it():
    start = Timestamp(seconds=1_700_000_000)
    parsed = requests.session_input(
        pb.RecordSessionRequest(session_id="s", user_id="u", started_at=start)
    )
    assert parsed.last_seen_at == parsed.started_at
    with pytest.raises(InvalidArgument):
        requests.session_input(
            pb.RecordSessionRequest(
                session_id="s",
                user_id="u",
                started_at=start,
                last_seen_at=Timestamp(seconds=1_699_999_999),
            )
        )


def test_stats_window_rules():
    since, until = Timestamp(seconds=100), Timestamp(seconds=200)
    _, end, as_of = requests.stats_window(pb.DirectoryStatsRequest(since=since, until=until))
    assert as_of == end == datetime.fromtimestamp(200, UTC)
    for request in [
        pb.DirectoryStatsRequest(until=until),
        pb.DirectoryStatsRequest(since=since),
        pb.DirectoryStatsRequest(since=until, until=since),
        pb.DirectoryStatsRequest(since=since, until=since),
    ]:
        with pytest.raises(InvalidArgument):
            requests.stats_window(request)


def test_page_tokens_only_fit_their_sort_order():
    by_email = requests.list_query(pb.ListUsersRequest())
    assert by_email.sort is UserSortKey.EMAIL and by_email.after is None

    class Last:
        email = "b@example.com"
        user_id = "u2"
        created_at = datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)

    token = requests.next_page_token(by_email, Last)
    resumed = requests.list_query(
        pb.ListUsersRequest(page=common_pb2.PageRequest(page_token=token))
    )
    assert resumed.after == ("b@example.com", "u2")
    by_created = requests.list_query(pb.ListUsersRequest(sort=pb.USER_SORT_CREATED_AT))
    created_token = requests.next_page_token(by_created, Last)
    assert requests.list_query(
        pb.ListUsersRequest(
            sort=pb.USER_SORT_CREATED_AT, page=common_pb2.PageRequest(page_token=created_token)
        )
    ).after == (Last.created_at, "u2")
    mismatched = [
        pb.ListUsersRequest(
            sort=pb.USER_SORT_CREATED_AT, page=common_pb2.PageRequest(page_token=token)
        ),
        pb.ListUsersRequest(descending=True, page=common_pb2.PageRequest(page_token=token)),
        pb.ListUsersRequest(page=common_pb2.PageRequest(page_token="%%%")),
        pb.ListUsersRequest(page=common_pb2.PageRequest(page_token=encode_token([1, 2]))),
        pb.ListUsersRequest(
            sort=pb.USER_SORT_CREATED_AT,
            page=common_pb2.PageRequest(page_token=encode_token(["created_at", False, "x", "u"])),
        ),
        pb.ListUsersRequest(page=common_pb2.PageRequest(page_size=-1)),
        pb.ListUsersRequest(sort=17),  # type: ignore[arg-type]
    ]
    for request in mismatched:
        with pytest.raises(InvalidArgument):
            requests.list_query(request)


def test_like_wildcards_in_search_are_literal():
    assert escape_like("50%_off\\") == "50\\%\\_off\\\\"


def test_enum_vocabularies_match_the_database_checks():
    from services.ledger.directory import convert, tables

    assert tuple(convert.ROLES.values()) == tables.ROLES
    assert tuple(convert.STATUSES.values()) == tables.STATUSES
    assert tuple(convert.LOGIN_METHODS.values()) == tables.LOGIN_METHODS
    assert tuple(convert.LOGIN_OUTCOMES.values()) == tables.LOGIN_OUTCOMES
