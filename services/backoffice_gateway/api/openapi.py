"""``/api/v1/openapi.json``: the OpenAPI 3 document, generated from the declared endpoints."""

from __future__ import annotations

from typing import Any

from services.backoffice_gateway.api.spec import Endpoint, Param

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
            },
        }
    },
}
PAGE_SCHEMA = {
    "type": "object",
    "required": ["items", "next_page_token", "total_count"],
    "properties": {
        "items": {"type": "array", "items": {"type": "object"}},
        "next_page_token": {"type": "string"},
        "total_count": {"type": "integer"},
        "total_count_is_lower_bound": {
            "type": "boolean",
            "description": "total_count is a lower bound: counting stopped there (a search"
            " matching more accounts than the ledger counts exactly)",
        },
    },
}


def _schema(p: Param) -> dict[str, Any]:
    if p.type == "array":
        items: dict[str, Any] = {"type": p.items_type}
        if p.items_type == "string":
            items["maxLength"] = p.max_length
        if p.items_enum is not None:
            items["enum"] = list(p.items_enum)
        if p.items_type == "integer":
            items["minimum"] = p.minimum if p.minimum is not None else 1
            items["maximum"] = p.maximum if p.maximum is not None else 2**62
        return {"type": "array", "items": items, "maxItems": 50}
    if p.type == "date-time":
        return {"type": "string", "format": "date-time", "maxLength": p.max_length}
    schema: dict[str, Any] = {"type": p.type}
    if p.type == "string":
        schema["maxLength"] = p.max_length
    if p.enum is not None:
        schema["enum"] = list(p.enum)
    if p.minimum is not None:
        schema["minimum"] = p.minimum
    if p.maximum is not None:
        schema["maximum"] = p.maximum
    if p.default is not None and p.type != "array":
        schema["default"] = p.default
    return schema


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _operation(e: Endpoint) -> dict[str, Any]:
    parameters = [
        {"name": p.name, "in": "path", "required": True, "schema": _schema(p),
         "description": p.description}
        for p in e.path_params
    ] + [
        {"name": p.name, "in": "query", "required": p.required, "schema": _schema(p),
         "description": p.description, **({"explode": True} if p.type == "array" else {})}
        for p in e.params
    ]
    ok_schema: dict[str, Any] = (
        {"$ref": "#/components/schemas/Page"} if e.csv else {"type": "object"}
    )
    ok_content: dict[str, Any] = {"application/json": {"schema": ok_schema}}
    if e.csv:
        ok_content["text/csv"] = {"schema": {"type": "string"}}
    operation: dict[str, Any] = {
        "operationId": e.name,
        "summary": e.summary,
        "tags": [e.tag],
        "parameters": parameters,
        "responses": {
            "200": {"description": "success", "content": ok_content},
            "400": _error("invalid parameter or body"),
            "401": _error("not signed in"),
            "403": _error("admin role required, or CSRF token missing"),
            "404": _error("not found (or billing disabled)"),
            "409": _error("refused by the service in its current state"),
            "429": _error("too many requests"),
            "501": _error("not available on the connected service"),
            "502": _error("a service refused the gateway's credentials or failed"),
            "503": _error("a service is unavailable; retry later"),
            "504": _error("a service did not answer in time"),
        },
    }
    if e.description:
        operation["description"] = e.description
    if e.body:
        properties = {p.name: _schema(p) for p in e.body}
        required = [p.name for p in e.body if p.required]
        body_schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            body_schema["required"] = required
        operation["requestBody"] = {
            "required": bool(required),
            "content": {"application/json": {"schema": body_schema}},
        }
    if e.public:
        operation["security"] = []
    return operation


def document(endpoints: list[Endpoint]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(e.openapi_path, {})[e.method.lower()] = _operation(e)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Back-office gateway API",
            "version": "1",
            "description": (
                "The back-office's data as JSON. Authenticate with an API token "
                "(`Authorization: Bearer gwt_...`, issued by `python -m "
                "services.backoffice_gateway operators issue-token`) or the session cookie "
                "(state-changing requests then need the `X-CSRF-Token` header). Every error "
                "is a JSON object `{\"error\": {status, code, message}}`. Lists accept "
                "`?format=csv` (or the `.csv` suffix) and export every page."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, "Page": PAGE_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "gw_session"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }
