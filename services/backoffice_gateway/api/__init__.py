"""The JSON API under /api/v1 (blueprint ``api``): reads, admin actions, OpenAPI document."""

from __future__ import annotations

from flask import Response, jsonify

from services.backoffice_gateway.api import actions, reads  # noqa: F401 - registers routes
from services.backoffice_gateway.api.openapi import document
from services.backoffice_gateway.api.registry import ENDPOINTS, bp


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document(ENDPOINTS))


__all__ = ["ENDPOINTS", "bp"]
