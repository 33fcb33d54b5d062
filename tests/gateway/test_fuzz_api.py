"""The JSON API fuzzed from its own OpenAPI document (schemathesis, positive and negative
data): every answer is a status the document declares, never a 5xx other than the declared
upstream ones, and every error is the JSON error body.

Runs as an admin API token against the real ledger and ingest (admin actions included: they
reach the services with generated ids and must be refused cleanly); drift is not running, so
its endpoints answer 503 (declared).
"""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error, status_code_conformance

from services.backoffice_gateway.api import ENDPOINTS
from services.backoffice_gateway.api.openapi import document
from services.backoffice_gateway.operators import issue_token
from tests.gateway.conftest import ADMIN

pytestmark = pytest.mark.integration

# Declared answers for a dependency that is away or refuses (drift not running here).
UPSTREAM = {501, 502, 503, 504}


@pytest.fixture(scope="module")
def api_token(app: Flask) -> str:
    return issue_token(app.extensions["gateway"].store, ADMIN, "fuzz")


# The document the app serves, generated from the declared endpoints (no server needed).
schema = schemathesis.openapi.from_dict(document(ENDPOINTS))


def check_error_body(case: Case, status: int, body: object, content_type: str) -> None:
    assert status < 500 or status in UPSTREAM, f"{case.method} {case.formatted_path}: {status}"
    if status >= 400:
        assert content_type.startswith("application/json"), (case.method, content_type, status)
        assert isinstance(body, dict) and set(body) == {"error"}, body
        error = body["error"]
        assert error["status"] == status and error["code"] and error["message"]
        assert "Traceback" not in error["message"]


@schema.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_api_never_fails_badly(case: Case, app: Flask, api_token: str) -> None:
    response = case.call(app=app, headers={"Authorization": f"Bearer {api_token}"})
    headers = {k.lower(): v for k, v in response.headers.items()}
    raw_type: object = headers.get("content-type", [""])
    content_type = str(raw_type[0] if isinstance(raw_type, list) else raw_type)
    body = response.json() if "json" in content_type else None
    check_error_body(case, response.status_code, body, content_type)
    if response.status_code not in UPSTREAM:
        case.validate_response(response, checks=[not_a_server_error,
                                                 status_code_conformance])
