"""The ``api`` blueprint and the decorator that declares each endpoint (see ``spec``).

A declared endpoint gets, in this order: login check (401), role check for admin endpoints
(403, audited as ``refused``), parameter parsing (400), the handler, then JSON or CSV. Admin
endpoints run their handler inside :func:`audit.audited`, so every admin action is logged
with its outcome whatever happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, request

from services.backoffice_gateway.api.respond import csv_response, json_response
from services.backoffice_gateway.api.spec import Endpoint, Param, parse_body, parse_query
from services.backoffice_gateway.audit import audited
from services.backoffice_gateway.auth.middleware import client_ip
from services.backoffice_gateway.auth.principal import Principal, current_principal
from services.backoffice_gateway.context import gateway
from services.backoffice_gateway.errors import ApiError, bad_request, forbidden, unauthenticated
from services.backoffice_gateway.views.common import Page

bp = Blueprint("api", __name__, url_prefix="/api/v1")
ENDPOINTS: list[Endpoint] = []

CSV_MAX_ROWS = 10_000
CSV_PAGE_SIZE = 500

Handler = Callable[[dict[str, Any]], Any]
# Admin handlers also name the audited target: (args) -> target string.
Target = Callable[[dict[str, Any]], str]


def _body() -> Any:
    if request.mimetype == "application/json":
        if not request.get_data():
            return {}
        body = request.get_json(silent=True)
        if body is None:
            raise bad_request("the body is not valid JSON")
        return body
    return request.form.to_dict()


def _principal(spec: Endpoint) -> Principal | None:
    principal = current_principal()
    if spec.public:
        return principal
    if principal is None:
        raise unauthenticated()
    return principal


def _run(spec: Endpoint, handler: Handler, target: Target | None, fmt: str,
         path_args: dict[str, Any]) -> Response:
    principal = _principal(spec)
    gw = gateway()
    if spec.hidden_without_billing and not gw.config.public_subscription_enabled:
        raise ApiError(404, "not_found", "billing is disabled on this installation")
    args: dict[str, Any] = dict(path_args)
    for p in spec.path_params:
        value = args.get(p.name)
        if isinstance(value, str) and (len(value) > p.max_length or "\x00" in value):
            raise bad_request(f"{p.name}: malformed", parameter=p.name)
        if isinstance(value, int) and not (p.minimum or 0) <= value <= (p.maximum or 2**62):
            raise bad_request(f"{p.name}: out of range", parameter=p.name)
    if spec.admin:
        assert target is not None
        if principal is None or not principal.is_admin:
            with audited(gw.store, principal, spec.name, target(args), args, client_ip()):
                raise forbidden()
        where = target(args)  # from the path alone: known before the body is read
        with audited(gw.store, principal, spec.name, where, args, client_ip()) as out:
            args.update(parse_query(spec.params, request.args))  # a refused value is audited
            args.update(parse_body(spec.body, _body()))
            args["operator"] = principal.username
            result = handler(args)
            out.detail = getattr(result, "audit_detail", "") or ""
        return json_response(result)
    args.update(parse_query(spec.params, request.args))
    if spec.body:
        args.update(parse_body(spec.body, _body()))
    if fmt == "csv":
        return _csv(spec, handler, args)
    return json_response(handler(args))


def _csv(spec: Endpoint, handler: Handler, args: dict[str, Any]) -> Response:
    """Every page of the list (up to CSV_MAX_ROWS rows) as one CSV file."""
    rows: list[Any] = []
    args = {**args, "page_size": CSV_PAGE_SIZE, "page_token": args.get("page_token") or ""}
    while len(rows) < CSV_MAX_ROWS:
        page = handler(args)
        if not isinstance(page, Page):
            raise bad_request("this resource is not a list")
        rows.extend(page.items)
        if not page.next_page_token:
            break
        args["page_token"] = page.next_page_token
    return csv_response(rows[:CSV_MAX_ROWS], spec.name)


def endpoint(
    path: str,
    method: str = "GET",
    *,
    summary: str,
    tag: str,
    params: tuple[Param, ...] = (),
    body: tuple[Param, ...] = (),
    path_params: tuple[Param, ...] = (),
    admin: bool = False,
    csv: bool = False,
    public: bool = False,
    billing: bool = True,
    target: Target | None = None,
    description: str = "",
) -> Callable[[Handler], Handler]:
    """Declare and register a JSON endpoint (and its ``.csv`` twin for lists)."""

    def register(handler: Handler) -> Handler:
        name = handler.__name__
        spec = Endpoint(
            name=name, path=path, method=method, summary=summary, tag=tag, params=params,
            body=body, path_params=path_params, admin=admin, csv=csv, public=public,
            description=description or (handler.__doc__ or "").strip(),
            hidden_without_billing=billing,
        )
        ENDPOINTS.append(spec)
        if csv:
            fmt_param = Param("format", "string", "json (default) or csv", enum=("json", "csv"),
                              default="json")
            spec = replace(spec, params=(*spec.params, fmt_param))
            ENDPOINTS[-1] = spec

        def view(**path_args: Any) -> Response:
            fmt = "json"
            if csv and request.args.get("format") == "csv":
                fmt = "csv"
            return _run(spec, handler, target, fmt, path_args)

        def csv_view(**path_args: Any) -> Response:
            return _run(spec, handler, target, "csv", path_args)

        bp.add_url_rule(path, endpoint=name, view_func=view, methods=[method])
        if csv:
            bp.add_url_rule(path + ".csv", endpoint=name + "_csv", view_func=csv_view,
                            methods=[method])
        return handler

    return register
