"""The operator's Preferences page: their own UTC offset, set with the session's CSRF token,
audited, and used by the date formatting of every page."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from tests.gateway.conftest import ADMIN, VIEWER, Browser, form_csrf, signed_in

pytestmark = pytest.mark.integration


def _selected(html: str) -> str:
    select = html[html.index('data-testid="utc-offset"'):]
    select = select[:select.index("</select>")]
    found = re.search(r'<option value="([^"]*)" selected>', select)
    assert found, "one option is selected"
    return found.group(1)


def _save(browser: Browser, value: str, token: str | None = None) -> tuple[int, str]:
    form = browser.client.get("/preferences").get_data(as_text=True)
    data = {"utc_offset_minutes": value}
    if token != "":
        data["csrf_token"] = token or form_csrf(form)
    answer = browser.client.post("/preferences", data=data)
    return answer.status_code, answer.headers.get("Location", "")


def test_viewer_sets_their_offset_and_dates_follow(app: Flask) -> None:
    viewer = signed_in(app, VIEWER)
    page = viewer.client.get("/preferences").get_data(as_text=True)
    assert 'data-testid="preferences-link"' in page and 'href="/preferences"' in page
    assert _selected(page) == "", "no preference: the browser's offset"
    assert _save(viewer, "330", token="")[0] == 403, "CSRF token required"

    status, location = _save(viewer, "330")
    assert (status, location) == (303, "/preferences?saved=1")
    saved = viewer.client.get(location).get_data(as_text=True)
    assert 'data-testid="action-result"' in saved and "UTC+05:30" in saved
    assert _selected(saved) == "330"
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \((?:[^)]*)UTC\+05:30\)", saved), (
        "times are written in UTC with the local time and offset beside")
    assert viewer.client.get("/api/v1/me").get_json()["utc_offset_minutes"] == 330
    # the profile wins over the browser's cookie
    viewer.client.set_cookie("tzoffset", "-480")
    assert "UTC+05:30)" in viewer.client.get("/preferences").get_data(as_text=True)

    assert _save(viewer, "")[0] == 303
    assert viewer.client.get("/api/v1/me").get_json()["utc_offset_minutes"] is None
    assert "UTC-08:00)" in viewer.client.get("/preferences").get_data(as_text=True)

    admin = signed_in(app, ADMIN)
    audit = admin.client.get(
        f"/api/v1/audit?action=set_preferences&target=operator:{VIEWER}").get_json()["items"]
    assert [(e["operator"], e["params"], e["result"], e["detail"]) for e in reversed(audit)] == [
        (VIEWER, {"utc_offset_minutes": 330}, "succeeded", "UTC offset UTC+05:30"),
        (VIEWER, {}, "succeeded", "UTC offset unset"),
    ]


@pytest.mark.parametrize("value", ["7", "-780", "900", "abc", "1e3", "+99999"])
def test_bad_offsets_are_400(app: Flask, value: str) -> None:
    admin = signed_in(app, ADMIN)
    before = admin.client.get("/api/v1/me").get_json()["utc_offset_minutes"]
    assert _save(admin, value)[0] == 400
    assert admin.client.get("/api/v1/me").get_json()["utc_offset_minutes"] == before


def test_api_change_is_audited_too(app: Flask) -> None:
    admin = signed_in(app, ADMIN)
    assert admin.post_json("/api/v1/me/preferences", {"utc_offset_minutes": 60}).status_code == 200
    assert admin.post_json("/api/v1/me/preferences", {"utc_offset_minutes": 61}).status_code == 400
    audit = admin.client.get(
        f"/api/v1/audit?action=set_preferences&target=operator:{ADMIN}").get_json()["items"]
    assert [(e["params"]["utc_offset_minutes"], e["result"]) for e in audit][:2] == [
        (61, "failed"), (60, "succeeded")]
    admin.post_json("/api/v1/me/preferences", {"utc_offset_minutes": None})
