"""Unit tests of pages/urls.py: the list state in the URL (kept across sorting and paging)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask

from services.backoffice_gateway.errors import ApiError
from services.backoffice_gateway.pages import urls

app = Flask(__name__)


def q(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


def test_with_args_keeps_filters_and_resets_paging() -> None:
    with app.test_request_context("/accounts?status=active&status=trialing&q=ab&page=T2&trail=T1"):
        link = urls.with_args({"sort": "mrr"})
        assert link.startswith("/accounts?")
        assert q(link) == {"status": ["active", "trialing"], "q": ["ab"], "sort": ["mrr"]}
        assert "q" not in q(urls.with_args({"q": None}))
        assert q(urls.with_args({"status": ["paused"]}))["status"] == ["paused"]


def test_next_and_previous_pages_carry_the_trail() -> None:
    with app.test_request_context("/accounts?status=active"):
        assert urls.previous_page() is None
        second = urls.next_page("T2")
    assert q(second)["page"] == ["T2"] and q(second)["status"] == ["active"]
    with app.test_request_context(second):
        third = urls.next_page("T3")
        back_to_first = urls.previous_page()
    assert q(third)["page"] == ["T3"] and q(third)["trail"] == ["T2"]
    assert back_to_first is not None and "page" not in q(back_to_first)
    assert q(back_to_first)["status"] == ["active"]
    with app.test_request_context(third):
        back = urls.previous_page()
    assert back is not None and q(back)["page"] == ["T2"] and q(back)["status"] == ["active"]


def test_sort_links_flip_direction() -> None:
    with app.test_request_context("/accounts?sort=mrr&plan=Pro&page=X"):
        href, aria = urls.sort_link("mrr", "mrr", False)
        assert aria == "ascending" and q(href)["desc"] == ["1"] and "page" not in q(href)
        href, aria = urls.sort_link("mrr", "mrr", True)
        assert aria == "descending" and "desc" not in q(href)
        href, aria = urls.sort_link("name", "mrr", False)
        assert aria == "none" and q(href)["sort"] == ["name"] and q(href)["plan"] == ["Pro"]


def test_csv_link_has_the_filters_not_the_page() -> None:
    link = urls.csv_link(
        "/api/v1/accounts",
        {"q": "x", "plan": ["A", "B"], "drift": None, "desc": True, "never_synced": False},
    )
    assert link.startswith("/api/v1/accounts?")
    assert q(link) == {"q": ["x"], "plan": ["A", "B"], "desc": ["true"], "format": ["csv"]}


@pytest.mark.parametrize(
    ("query", "call"),
    [
        ("?size=7", urls.page_size),
        ("?drift=maybe", lambda: urls.flag("drift")),
        ("?since=2025-02-30", lambda: urls.day("since")),
        ("?q=" + "x" * 201, lambda: urls.arg("q")),
        ("?q=a%00b", lambda: urls.arg("q")),
        ("?status=bogus", lambda: urls.args_list("status", ("active",))),
        ("?sort=zzz", lambda: urls.choice("sort", ("name",), "name")),
    ],
)
def test_bad_parameters_are_400(query: str, call: object) -> None:
    with app.test_request_context("/accounts" + query), pytest.raises(ApiError) as raised:
        call()  # type: ignore[operator]
    assert raised.value.status == 400


def test_good_parameters() -> None:
    with app.test_request_context("/x?size=100&drift=0&since=2025-02-28&until=2025-02-28"):
        assert urls.page_size() == 100
        assert urls.flag("drift") is False
        assert urls.flag("absent") is None
        since, until = urls.day("since"), urls.day("until", end=True)
        assert since is not None and until is not None
        assert (until - since).days == 1
