"""The shape comparison itself detects what it must (so the shape tests can fail)."""

from __future__ import annotations

from .shapes import envelope_missing, missing_paths

REAL = {"a": 1, "b": {"c": None, "d": {"e": 1}}, "items": [{"x": 1, "y": 2}],
        "metadata": {"free": "form"}}


def test_missing_key_detected() -> None:
    sim = {"a": 1, "b": {"c": 1, "d": {}}, "items": [{"x": 1}], "metadata": {}}
    assert sorted(missing_paths(REAL, sim, False)) == ["b.d.e", "items[].y"]


def test_null_object_strict_vs_tolerant() -> None:
    sim: dict[str, object] = {"a": 1, "b": None, "items": [], "metadata": {}}
    assert missing_paths(REAL, sim, False)
    assert missing_paths(REAL, sim, True) == []


def test_extra_keys_allowed() -> None:
    sim = {**REAL, "new": {"z": 1}}
    assert missing_paths(REAL, sim, False) == []


def test_envelope() -> None:
    real = {"id": "e", "request": {"id": None, "idempotency_key": None},
            "data": {"object": {}, "previous_attributes": {}}}
    sim = {"id": "e", "request": {"id": None}, "data": {"object": {}}}
    assert sorted(envelope_missing(real, sim)) == ["data.previous_attributes",
                                                   "request.idempotency_key"]
