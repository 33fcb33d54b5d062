"""Unit tests of the gateway's pure parts: passwords, redirects, parameter parsing, the gRPC
error mapping, CSV cells. No servers."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from werkzeug.datastructures import MultiDict

from services.backoffice_gateway.api.spec import Param, parse_body, parse_query
from services.backoffice_gateway.auth.login import safe_next
from services.backoffice_gateway.auth.passwords import (
    WeakPassword,
    hash_password,
    verify_password,
)
from services.backoffice_gateway.backends import api_error_for
from services.backoffice_gateway.errors import ApiError


def test_passwords() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterz", stored)
    assert not verify_password("correct horse battery", None)
    assert not verify_password("x", "not-a-hash")
    assert not verify_password("x", "md5$1$2$3$4$5")
    assert hash_password("correct horse battery") != stored  # salted
    with pytest.raises(WeakPassword):
        hash_password("short")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, "/"), ("", "/"), ("/", "/"), ("/accounts?x=1#y", "/accounts?x=1#y"),
        ("//evil", "/"), ("///evil", "/"), ("http://evil", "/"), ("evil", "/"),
        ("/\\evil", "/"), ("/a\nb", "/"), ("/" + "a" * 3000, "/"),
    ],
)
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


PARAMS = (
    Param("n", "integer", minimum=1, maximum=10, default=5),
    Param("flag", "boolean", default=False),
    Param("when", "date-time"),
    Param("kind", enum=("a", "b"), default="a"),
    Param("tags", "array", items_enum=("x", "y")),
)


def test_parse_query_defaults_and_values() -> None:
    assert parse_query(PARAMS, MultiDict()) == {
        "n": 5, "flag": False, "when": None, "kind": "a", "tags": []
    }
    parsed = parse_query(PARAMS, MultiDict([("n", "3"), ("flag", "yes"), ("when", "2025-06-01"),
                                            ("kind", "b"), ("tags", "x"), ("tags", "y")]))
    assert parsed == {"n": 3, "flag": True, "when": datetime(2025, 6, 1, tzinfo=UTC),
                      "kind": "b", "tags": ["x", "y"]}


@pytest.mark.parametrize(
    "pairs",
    [
        [("n", "0")], [("n", "11")], [("n", "x")], [("n", "1"), ("n", "2")], [("flag", "maybe")],
        [("when", "yesterday")], [("when", "0001-01-01")], [("kind", "c")], [("tags", "z")],
        [("kind", "a\x00")],
    ],
)
def test_parse_query_refuses_with_400(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(ApiError) as refused:
        parse_query(PARAMS, MultiDict(pairs))
    assert refused.value.status == 400
    assert refused.value.extra["parameter"] == pairs[0][0]


def test_parse_body() -> None:
    body = (Param("quantity", "integer", required=True, minimum=1),
            Param("ids", "array", items_type="integer", minimum=1, default=[]))
    assert parse_body(body, {"quantity": 2, "ids": [1, 2]}) == {"quantity": 2, "ids": [1, 2]}
    for bad in ({}, {"quantity": "2x"}, {"quantity": True}, {"quantity": 1, "ids": "1"},
                {"quantity": 1, "ids": [0]}, [1, 2], "text"):
        with pytest.raises(ApiError) as refused:
            parse_body(body, bad)
        assert refused.value.status == 400


class FakeRpcError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "status", "shown"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400, "bad sort key"),
        (grpc.StatusCode.NOT_FOUND, 404, "bad sort key"),
        (grpc.StatusCode.FAILED_PRECONDITION, 409, "bad sort key"),
        (grpc.StatusCode.UNAVAILABLE, 503, "ledger unavailable, retry later"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "the service did not answer in time"),
        (grpc.StatusCode.PERMISSION_DENIED, 502, "credentials lack"),
        (grpc.StatusCode.INTERNAL, 502, "upstream service error"),
        (grpc.StatusCode.UNIMPLEMENTED, 501, "not available"),
    ],
)
def test_one_grpc_to_http_mapping(code: grpc.StatusCode, status: int, shown: str) -> None:
    error = api_error_for(FakeRpcError(code, "bad sort key"), "ledger")
    assert error.status == status
    assert shown in error.message
    assert error.body()["error"]["service"] == "ledger"


def test_ttl_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.backoffice_gateway import cache

    clock = [100.0]
    monkeypatch.setattr(cache.time, "monotonic", lambda: clock[0])
    c: cache.TtlCache[str, int] = cache.TtlCache(10.0, size=2)
    c.put("a", 1)
    assert c.get("a") == 1
    clock[0] += 11
    assert c.get("a") is None
    c.put("a", 1)
    c.put("b", 2)
    c.put("c", 3)  # full: starts over
    assert (c.get("a"), c.get("c")) == (None, 3)
    off: cache.TtlCache[str, int] = cache.TtlCache(0.0)
    off.put("a", 1)
    assert off.get("a") is None
