"""An aiohttp server playing the subset of the Stripe REST API the suite calls.

It serves a :class:`~.world.World` through the real ``stripe`` client
(``stripe.StripeClient(key, base_addresses={"api": url})``): Stripe-style list envelopes and
error bodies, 30-day event retention relative to a movable world clock, mutations that append
events (and deliver them when a webhook target is configured), and seeded fault injection.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from . import hooks
from .config import WorldConfig, is_basil
from .delivery import DeliveryFaults, DeliveryReport, WebhookDeliverer
from .diff import previous_attributes
from .faults import ApiFaults, FaultInjector
from .ids import object_id
from .listing import CreatedBounds, ListIndex
from .model import Refund
from .packed import PackedObjects, splice_expanded
from .renderer import renderer_for
from .world import World, generate_world

log = logging.getLogger(__name__)

JSON = dict[str, Any]
RETENTION_SECONDS = 30 * 86_400
#: Owner index for ids minted by REST mutations (never used by customers or the catalog).
SERVER_OWNER = 62**4 - 2
_KEY_RE = re.compile(r"^sk_test_[A-Za-z0-9_]+$")
_INDEXED = re.compile(r"^(?P<name>[a-z_]+)\[(?P<key>[a-z_0-9]*)\]$")

#: URL path segment -> object type in ``World.objects``.
#: List parameters that filter by an object's fields (``_matches`` reads the object only
#: when one is given, or a ``status``: a subscription's other than ``all`` filters too).
_FILTERS = ("customer", "charge", "payment_intent", "invoice", "email", "price", "subscription")
#: ``expand[]`` fields of a list and the kind each id names.
_EXPANDED = {"latest_invoice": "invoice", "customer": "customer"}

RESOURCES = {
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "charges": "charge",
    "refunds": "refund",
    "credit_notes": "credit_note",
}


@dataclass(slots=True)
class ServerSettings:
    """How the simulator behaves towards API clients and the webhook endpoint.

    ``api_key``: the one accepted secret key; ``None`` accepts any ``sk_test_...`` key.
    """

    api_key: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    api_faults: ApiFaults = field(default_factory=ApiFaults)
    delivery_faults: DeliveryFaults = field(default_factory=DeliveryFaults)
    delivery_concurrency: int = 8
    auto_deliver: bool = True
    retention_seconds: int = RETENTION_SECONDS

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return (
            f"ServerSettings(webhook_url={self.webhook_url!r}, "
            f"api_faults={self.api_faults!r}, delivery_faults={self.delivery_faults!r})"
        )


class StripeError(Exception):
    """An error answered with Stripe's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        etype: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.etype = status, message, etype
        self.code, self.param, self.headers = code, param, headers or {}

    def response(self) -> web.Response:
        """The HTTP response Stripe would send."""
        err: JSON = {"type": self.etype, "message": self.message}
        if self.code:
            err["code"] = self.code
        if self.param:
            err["param"] = self.param
        return web.json_response(
            {"error": err}, status=self.status, headers={"Request-Id": "req_sim", **self.headers}
        )


def json_bytes(data: Any) -> web.Response:
    """A 200 JSON answer serialised with orjson: list pages of 100 expanded subscriptions
    are ~1 MB, and the stdlib encoder was a large part of serving one (same JSON value)."""
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def parse_params(pairs: Iterable[tuple[str, str]]) -> JSON:
    """Decode Stripe's form encoding: ``a[b]=1`` -> ``{"a": {"b": "1"}}``,
    ``a[]=x`` / ``a[0]=x`` -> ``{"a": ["x"]}``."""
    out: JSON = {}
    for key, value in pairs:
        m = _INDEXED.match(key)
        if not m:
            out[key] = value
            continue
        name, sub = m.group("name"), m.group("key")
        if sub == "" or sub.isdigit():
            out.setdefault(name, [])
            if isinstance(out[name], list):
                out[name].append(value)
        else:
            out.setdefault(name, {})
            if isinstance(out[name], dict):
                out[name][sub] = value
    return out


def _int(params: JSON, name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {raw}", param=name) from None


def _bool(raw: Any) -> bool:
    return str(raw).lower() in ("true", "1", "yes")


def set_quantity(sub: JSON, quantity: int) -> None:
    """Set a single-item subscription's quantity where its API version keeps it (on the
    item always; also top-level and on the legacy ``plan`` shapes' subscription)."""
    for item in sub["items"]["data"][:1]:
        item["quantity"] = quantity
    if "quantity" in sub:
        sub["quantity"] = quantity


class SimulatorApp:
    """State and handlers of one simulator instance (one world, one clock)."""

    def __init__(self, world: World, settings: ServerSettings | None = None) -> None:
        self.world = world
        self.settings = settings or ServerSettings()
        self.now = world.last_event_time
        self.delivered_upto = 0
        self.faults = FaultInjector(self.settings.api_faults)
        self.lists = ListIndex(world.objects)
        self.stats: dict[str, int] = {
            "requests": 0,
            "injected_429": 0,
            "injected_5xx": 0,
            "rate_limited": 0,
            "unauthorized": 0,
        }
        self.last_delivery: JSON | None = None
        self._idempotency: dict[str, tuple[int, JSON]] = {}
        self._ids = 0
        self._deliver_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Event ids held back from webhook delivery (test hooks: dropped or delayed).
        self.suppressed: set[str] = set()

    # ------------------------------------------------------------------ app
    def make_app(self) -> web.Application:
        """The aiohttp application (routes + Stripe error middleware)."""
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/v1/events", self.list_events)
        r.add_get("/v1/events/{id}", self.get_event)
        for seg in RESOURCES:
            r.add_get(f"/v1/{seg}", self.list_objects)
            r.add_get(f"/v1/{seg}/{{id}}", self.get_object)
        r.add_post("/v1/subscriptions/{id}", self.update_subscription)
        r.add_delete("/v1/subscriptions/{id}", self.cancel_subscription)
        r.add_post("/v1/subscriptions/{id}/cancel", self.cancel_subscription)
        r.add_post("/v1/refunds", self.create_refund)
        r.add_post("/_sim/deliver", self.sim_deliver)
        r.add_post("/_sim/advance", self.sim_advance)
        r.add_get("/_sim/stats", self.sim_stats)
        r.add_get("/_sim/health", self.sim_health)
        r.add_get("/_sim/events/{id}/body", self.sim_event_body)
        hooks.add_routes(r, self)
        return app

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)
        self.stats["requests"] += 1
        try:
            self._authenticate(request)
            self._inject_faults()
            key = request.headers.get("Idempotency-Key")
            if request.method == "POST" and key and key in self._idempotency:
                status, body = self._idempotency[key]
                return web.json_response(
                    body, status=status, headers={"Idempotent-Replayed": "true"}
                )
            response = await handler(request)
            if request.method == "POST" and key and isinstance(response, web.Response):
                self._idempotency[key] = (response.status, json.loads(response.text or "{}"))
            return response
        except StripeError as err:
            return err.response()
        except web.HTTPNotFound:
            return StripeError(
                404, f"Unrecognized request URL ({request.method}: {request.path})."
            ).response()

    def _authenticate(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        expected = self.settings.api_key
        ok = (key == expected) if expected else bool(_KEY_RE.match(key))
        if not ok:
            self.stats["unauthorized"] += 1
            shown = f"{key[:8]}***{key[-4:]}" if len(key) > 12 else "***"
            raise StripeError(
                401,
                f"Invalid API Key provided: {shown}" if key else "You did not provide an API key.",
            )

    def _inject_faults(self) -> None:
        fate = self.faults.decide()
        if fate == "rate_limit":
            self.stats["rate_limited"] += 1
            raise StripeError(
                429,
                "Request rate limit exceeded. Please retry later.",
                code="rate_limit",
                headers={
                    "Stripe-Should-Retry": "true",
                    "Retry-After": str(self.faults.retry_after()),
                },
            )
        if fate == "429":
            self.stats["injected_429"] += 1
            raise StripeError(
                429,
                "Too many requests hit the API too quickly.",
                code="lock_timeout",
                headers={"Stripe-Should-Retry": "true"},
            )
        if fate == "5xx":
            self.stats["injected_5xx"] += 1
            raise StripeError(
                500,
                "An unknown error occurred (injected).",
                etype="api_error",
                headers={"Stripe-Should-Retry": "true"},
            )

    # ------------------------------------------------------------------ lists
    @staticmethod
    def _paginate(items: list[JSON], params: JSON, url: str) -> JSON:
        """Stripe cursor pagination over ``items`` (already newest first)."""
        limit = _int(params, "limit", 10) or 10
        if not 1 <= limit <= 100:
            raise StripeError(400, "Invalid limit: must be between 1 and 100", param="limit")
        after, before = params.get("starting_after"), params.get("ending_before")
        ids = [it["id"] for it in items]
        if after:
            if after not in ids:
                raise StripeError(
                    400,
                    f"No such object: '{after}'",
                    code="resource_missing",
                    param="starting_after",
                )
            start = ids.index(after) + 1
            page = items[start : start + limit]
            more = start + limit < len(items)
        elif before:
            if before not in ids:
                raise StripeError(
                    400,
                    f"No such object: '{before}'",
                    code="resource_missing",
                    param="ending_before",
                )
            end = ids.index(before)
            page = items[max(0, end - limit) : end]
            more = end - limit > 0
        else:
            page, more = items[:limit], len(items) > limit
        return {"object": "list", "data": page, "has_more": more, "url": url}

    @staticmethod
    def _created_filter(params: JSON) -> Callable[[int], bool]:
        spec = params.get("created")
        if spec is None:
            return lambda _t: True
        if not isinstance(spec, dict):
            exact = int(spec)
            return lambda t: t == exact
        bounds = {k: int(v) for k, v in spec.items()}
        gte, gt = bounds.get("gte"), bounds.get("gt")
        lte, lt = bounds.get("lte"), bounds.get("lt")
        return lambda t: (
            (gte is None or t >= gte)
            and (gt is None or t > gt)
            and (lte is None or t <= lte)
            and (lt is None or t < lt)
        )

    def _visible_events(self) -> list[JSON]:
        oldest = self.now - self.settings.retention_seconds
        out = []
        for ev in reversed(self.world.events):
            t = ev["created"]
            if t < oldest:
                break
            if t <= self.now:
                out.append(ev)
        return out

    async def list_events(self, request: web.Request) -> web.Response:
        """``GET /v1/events``: newest first, last 30 days, type/types/created filters."""
        params = parse_params(request.query.items())
        created_ok = self._created_filter(params)
        types: set[str] = set(params.get("types") or [])
        if params.get("type"):
            types.add(params["type"])
        prefixes = {t[:-1] for t in types if t.endswith("*")}
        exact = {t for t in types if not t.endswith("*")}

        def type_ok(et: str) -> bool:
            return not types or et in exact or any(et.startswith(p) for p in prefixes)

        if not params.get("ending_before"):
            positions, more = self._events_page(params, type_ok, created_ok)
            # Each event's exact bytes are kept (what its webhook carried, what Stripe lists
            # too): a page is spliced from them instead of serialising the dicts again.
            bodies = self.world.bodies
            return web.Response(
                body=b'{"object":"list","data":['
                + b",".join(bodies[i] for i in positions)
                + b'],"has_more":'
                + (b"true" if more else b"false")
                + b',"url":"/v1/events"}',
                content_type="application/json",
            )
        items = [
            ev for ev in self._visible_events() if type_ok(ev["type"]) and created_ok(ev["created"])
        ]
        return web.json_response(self._paginate(items, params, "/v1/events"))

    def _events_page(
        self,
        params: JSON,
        type_ok: Callable[[str], bool],
        created_ok: Callable[[int], bool],
    ) -> tuple[list[int], bool]:
        """One page walking back from the cursor (O(page), not O(window): big worlds): the
        events' positions in the world and whether more follow."""
        limit = _int(params, "limit", 10) or 10
        if not 1 <= limit <= 100:
            raise StripeError(400, "Invalid limit: must be between 1 and 100", param="limit")
        events = self.world.events
        start = len(events) - 1
        after = params.get("starting_after")
        if after:
            pos = self.world.index.get(after)
            if pos is None:
                raise StripeError(
                    400,
                    f"No such object: '{after}'",
                    code="resource_missing",
                    param="starting_after",
                )
            start = pos - 1
        created = params.get("created")
        floor = self.now - self.settings.retention_seconds
        if isinstance(created, dict) and created.get("gte") is not None:
            floor = max(floor, int(created["gte"]))
        page: list[int] = []
        i = start
        while i >= 0 and len(page) <= limit:
            ev = events[i]
            t = ev["created"]
            if t < floor:
                break
            if t <= self.now and type_ok(ev["type"]) and created_ok(t):
                page.append(i)
            i -= 1
        return page[:limit], len(page) > limit

    async def get_event(self, request: web.Request) -> web.Response:
        """``GET /v1/events/{id}`` (404 once outside the retention window)."""
        eid = request.match_info["id"]
        pos = self.world.index.get(eid)
        if (
            pos is None
            or self.world.events[pos]["created"] < self.now - self.settings.retention_seconds
        ):
            raise StripeError(404, f"No such event: '{eid}'", code="resource_missing", param="id")
        return web.Response(body=self.world.bodies[pos], content_type="application/json")

    def _kind(self, request: web.Request) -> str:
        return RESOURCES[request.path.split("/")[2]]

    async def list_objects(self, request: web.Request) -> web.Response:
        """List endpoints of customers, subscriptions, invoices, charges, refunds, credit notes."""
        kind = self._kind(request)
        params = parse_params(request.query.items())
        if params.get("ending_before"):
            created_ok = self._created_filter(params)
            store = self.world.objects.get(kind, {})
            items = [o for o in reversed(list(store.values())) if created_ok(o.get("created", 0))]
            items.sort(key=lambda o: o.get("created", 0), reverse=True)
            items = [o for o in items if self._matches(kind, o, params)]
            page = self._paginate(items, params, request.path)
        else:
            ids, more = self._forward_page(kind, params)
            store = self.world.objects.get(kind, {})
            if isinstance(store, PackedObjects):
                return self._packed_page(store, ids, more, params, request.path)
            page = {"object": "list", "data": [store[i] for i in ids], "has_more": more}
            page["url"] = request.path
        if params.get("expand"):
            page["data"] = [self._expand(o, params, "data.") for o in page["data"]]
        return json_bytes(page)

    def _packed_page(
        self, store: PackedObjects, ids: list[str], more: bool, params: JSON, url: str
    ) -> web.Response:
        """A page of a packed world spliced from the stored bytes (the same JSON as the
        parsed page: ``tests/simulator/test_packed.py``); an object whose expansion cannot
        be spliced is parsed, expanded and serialised like any other."""
        wanted = params.get("expand") or []
        fields = [
            f[len("data.") :]
            for f in (wanted if isinstance(wanted, list) else [wanted])
            if f in ("data.latest_invoice", "data.customer")
        ]
        items: list[bytes] = []
        for oid in ids:
            raw: bytes | None = store.raw(oid)
            for name in fields:
                if raw is None:
                    break
                target = self.world.objects.get(_EXPANDED[name], {})
                raw = splice_expanded(
                    raw,
                    name,
                    lambda ref, t=target: (
                        t.raw(ref)  # type: ignore[misc]
                        if isinstance(t, PackedObjects) and ref in t
                        else None
                    ),
                )
            if raw is None:
                raw = orjson.dumps(self._expand(store[oid], params, "data."))
            items.append(raw)
        body = (
            b'{"object":"list","data":['
            + b",".join(items)
            + b'],"has_more":'
            + (b"true" if more else b"false")
            + b',"url":'
            + orjson.dumps(url)
            + b"}"
        )
        return web.Response(body=body, content_type="application/json")

    def _forward_page(self, kind: str, params: JSON) -> tuple[list[str], bool]:
        """A first page or one after ``starting_after``, walked from the cursor (listing):
        its objects' ids and whether more follow."""
        limit = _int(params, "limit", 10) or 10
        if not 1 <= limit <= 100:
            raise StripeError(400, "Invalid limit: must be between 1 and 100", param="limit")
        after = params.get("starting_after")
        try:
            created = CreatedBounds.of(params.get("created"))
        except (TypeError, ValueError):
            raise StripeError(400, "Invalid created filter", param="created") from None
        status = params.get("status")
        filtered = any(params.get(name) for name in _FILTERS) or (
            status != "all" if kind == "subscription" else bool(status)
        )
        found = self.lists.page(
            kind,
            limit=limit,
            after=after,
            created=created,
            matches=(lambda obj: self._matches(kind, obj, params)) if filtered else None,
        )
        if found is None:
            raise StripeError(
                400, f"No such object: '{after}'", code="resource_missing", param="starting_after"
            )
        return found

    @staticmethod
    def _matches(kind: str, obj: JSON, params: JSON) -> bool:
        """Whether ``obj`` passes the list's filters (``_FILTERS``; a subscription list
        without ``status`` leaves out the canceled ones, as Stripe's does)."""
        for name in ("customer", "charge", "payment_intent", "invoice", "email"):
            if params.get(name) and obj.get(name) != params[name]:
                return False
        if kind == "subscription":
            status = params.get("status")
            if status is None and obj.get("status") in ("canceled", "incomplete_expired"):
                return False
            if status not in (None, "all") and obj.get("status") != status:
                return False
            if params.get("price"):
                prices = [it["price"]["id"] for it in obj["items"]["data"]]
                if params["price"] not in prices:
                    return False
        if kind == "invoice":
            if params.get("subscription"):
                sub = obj.get("subscription") or (
                    ((obj.get("parent") or {}).get("subscription_details") or {}).get(
                        "subscription"
                    )
                )
                if sub != params["subscription"]:
                    return False
            if params.get("status") and obj.get("status") != params["status"]:
                return False
        return True

    def _lookup(self, kind: str, oid: str) -> JSON:
        obj = self.world.objects.get(kind, {}).get(oid)
        if obj is None:
            raise StripeError(
                404,
                f"No such {kind.replace('_', ' ')}: '{oid}'",
                code="resource_missing",
                param="id",
            )
        return obj

    async def get_object(self, request: web.Request) -> web.Response:
        """Retrieve one object by id (404 ``resource_missing`` if unknown)."""
        params = parse_params(request.query.items())
        obj = self._lookup(self._kind(request), request.match_info["id"])
        return json_bytes(self._expand(obj, params))

    def _expand(self, obj: JSON, params: JSON, prefix: str = "") -> JSON:
        """Stripe's ``expand[]``: the ``latest_invoice`` / ``customer`` ids replaced by the
        objects (what lets one subscription list page carry the invoice statuses too)."""
        wanted = params.get("expand") or []
        if not isinstance(wanted, list):
            wanted = [wanted]
        out = obj
        for path in wanted:
            field_name = path[len(prefix) :] if path.startswith(prefix) else None
            kind = _EXPANDED.get(field_name or "")
            value = obj.get(field_name or "")
            if kind and isinstance(value, str):
                found = self.world.objects.get(kind, {}).get(value)
                if found is not None:
                    out = {**out, field_name: found}  # type: ignore[dict-item]
        return out

    # ------------------------------------------------------------------ mutations
    def _version_for(self, customer_id: str | None) -> str:
        default = self.world.config.version_cycle()[0]
        return self.world.api_version_of.get(customer_id or "", default)

    def _emit(self, etype: str, obj: JSON, prev: JSON | None, customer_id: str | None) -> None:
        self.world.new_event(self.now, self._version_for(customer_id), etype, obj, prev)
        self._auto_deliver()

    def _auto_deliver(self) -> None:
        if (
            self.settings.webhook_url
            and self.settings.webhook_secret
            and self.settings.auto_deliver
        ):
            task = asyncio.get_running_loop().create_task(self.deliver_pending())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _form(self, request: web.Request) -> JSON:
        if request.can_read_body:
            return parse_params((await request.post()).items())  # type: ignore[arg-type]
        return parse_params(request.query.items())

    async def update_subscription(self, request: web.Request) -> web.Response:
        """``POST /v1/subscriptions/{id}``: ``cancel_at_period_end`` (and ``metadata``)."""
        old = self._lookup("subscription", request.match_info["id"])
        params = await self._form(request)
        if old["status"] == "canceled":
            raise StripeError(
                400,
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
        new = copy.deepcopy(old)
        if "cancel_at_period_end" in params:
            flag = _bool(params["cancel_at_period_end"])
            period_end = new.get("current_period_end") or new["items"]["data"][0].get(
                "current_period_end"
            )
            new["cancel_at_period_end"] = flag
            new["cancel_at"] = period_end if flag else None
            new["canceled_at"] = self.now if flag else None
            new["cancellation_details"] = {
                "comment": None,
                "feedback": None,
                "reason": "cancellation_requested" if flag else None,
            }
        quantity = _int(params, "quantity")
        if quantity is None:
            quantity = _int(params, "items[0][quantity]")
        if quantity is not None:
            if quantity < 1:
                raise StripeError(400, "Invalid quantity: must be at least 1", param="quantity")
            set_quantity(new, quantity)
        if isinstance(params.get("metadata"), dict):
            new["metadata"] = {**new.get("metadata", {}), **params["metadata"]}
        prev = previous_attributes(old, new)
        self.world.objects["subscription"][new["id"]] = new
        if prev:
            self._emit("customer.subscription.updated", new, prev, new["customer"])
        return web.json_response(self._expand(new, params))

    async def cancel_subscription(self, request: web.Request) -> web.Response:
        """``DELETE /v1/subscriptions/{id}``: cancel immediately."""
        old = self._lookup("subscription", request.match_info["id"])
        if old["status"] == "canceled":
            raise StripeError(
                400,
                f"No such subscription: '{old['id']}' is already canceled",
                code="resource_missing",
            )
        new = copy.deepcopy(old)
        new.update(
            status="canceled", canceled_at=self.now, ended_at=self.now, cancel_at_period_end=False
        )
        new["cancellation_details"] = {
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested",
        }
        self.world.objects["subscription"][new["id"]] = new
        self._emit("customer.subscription.deleted", new, None, new["customer"])
        return web.json_response(new)

    async def create_refund(self, request: web.Request) -> web.Response:
        """``POST /v1/refunds`` (``charge`` or ``payment_intent``, optional ``amount``)."""
        params = await self._form(request)
        charge_id = params.get("charge")
        if not charge_id and params.get("payment_intent"):
            pi = self._lookup_pi(params["payment_intent"])
            charge_id = pi.get("latest_charge") or next(
                (
                    c["id"]
                    for c in pi.get("charges", {}).get("data", [])
                    if c["status"] == "succeeded"
                ),
                None,
            )
        if not charge_id:
            raise StripeError(
                400,
                "One of the following params should be provided for this "
                "request: payment_intent or charge.",
                param="charge",
            )
        old = self._lookup("charge", charge_id)
        remaining = old["amount"] - old["amount_refunded"]
        if old["status"] != "succeeded" or remaining <= 0:
            raise StripeError(
                400,
                f"Charge {charge_id} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = _int(params, "amount", remaining) or remaining
        if amount <= 0 or amount > remaining:
            raise StripeError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded "
                f"amount on charge ({remaining})",
                code="amount_too_large",
                param="amount",
            )
        self._ids += 1
        tag = self.world.tag
        rf = Refund(
            id=object_id("re", tag, SERVER_OWNER, self._ids),
            charge_id=charge_id,
            payment_intent_id=old.get("payment_intent"),
            amount=amount,
            currency=old["currency"],
            created=self.now,
            reason=params.get("reason"),
            customer_id=old.get("customer"),
            balance_transaction=object_id("txn", tag, SERVER_OWNER, self._ids),
        )
        version = self._version_for(old.get("customer"))
        refund = renderer_for(version).refund(rf)
        if isinstance(params.get("metadata"), dict):
            refund["metadata"] = {**refund.get("metadata", {}), **params["metadata"]}
        new = copy.deepcopy(old)
        new["amount_refunded"] += amount
        new["refunded"] = new["amount_refunded"] >= new["amount"]
        refunds = new.get("refunds") or {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/charges/{charge_id}/refunds",
        }
        refunds["data"] = [refund, *refunds["data"]]
        if "total_count" in refunds:
            refunds["total_count"] = len(refunds["data"])
        new["refunds"] = refunds
        self.world.objects["charge"][charge_id] = new
        self.world.objects.setdefault("refund", {})[rf.id] = refund
        self._emit("charge.refunded", new, previous_attributes(old, new), old.get("customer"))
        self._emit("refund.created", refund, None, old.get("customer"))
        return web.json_response(refund)

    def _lookup_pi(self, pid: str) -> JSON:
        obj = self.world.objects.get("payment_intent", {}).get(pid)
        if obj is None:
            raise StripeError(
                404,
                f"No such payment_intent: '{pid}'",
                code="resource_missing",
                param="payment_intent",
            )
        return obj

    # ------------------------------------------------------------------ control
    async def deliver_pending(
        self, url: str | None = None, secret: str | None = None, from_start: bool = False
    ) -> DeliveryReport:
        """Deliver the events not delivered yet (or all, ``from_start``) to the webhook."""
        url = url or self.settings.webhook_url
        secret = secret or self.settings.webhook_secret
        if not url or not secret:
            raise StripeError(400, "No webhook URL/secret configured", etype="sim_error")
        async with self._deliver_lock:
            start = 0 if from_start else self.delivered_upto
            end = len(self.world.events)
            batch = [
                (self.world.events[i]["id"], self.world.bodies[i])
                for i in range(start, end)
                if self.world.events[i]["id"] not in self.suppressed
            ]
            deliverer = WebhookDeliverer(
                url,
                secret,
                concurrency=self.settings.delivery_concurrency,
                faults=self.settings.delivery_faults,
            )
            report = await deliverer.deliver(batch)
            self.delivered_upto = max(self.delivered_upto, end)
            self.last_delivery = report.as_dict()
            return report

    async def _json_body(self, request: web.Request) -> JSON:
        if not request.can_read_body:
            return dict(request.query)
        try:
            body = await request.json()
        except ValueError:
            body = dict(await request.post())
        return body if isinstance(body, dict) else {}

    async def sim_deliver(self, request: web.Request) -> web.Response:
        """``POST /_sim/deliver`` ``{"from_start"?, "url"?, "secret"?}`` -> delivery report."""
        body = await self._json_body(request)
        try:
            report = await self.deliver_pending(
                body.get("url"), body.get("secret"), _bool(body.get("from_start", False))
            )
        except StripeError as err:
            return err.response()
        return web.json_response(report.as_dict())

    async def sim_advance(self, request: web.Request) -> web.Response:
        """``POST /_sim/advance`` ``{"seconds": n}`` or ``{"to": epoch}`` -> ``{"now": ...}``."""
        body = await self._json_body(request)
        if "to" in body:
            self.now = int(body["to"])
        else:
            self.now += int(body.get("seconds", 0))
        return web.json_response({"now": self.now})

    async def sim_stats(self, request: web.Request) -> web.Response:
        """``GET /_sim/stats``: clock, event counts, request/fault counters, last delivery."""
        return web.json_response(
            {
                "now": self.now,
                "events": len(self.world.events),
                "delivered_upto": self.delivered_upto,
                "pending": len(self.world.events) - self.delivered_upto,
                "objects": {k: len(v) for k, v in self.world.objects.items()},
                **self.stats,
                "last_delivery": self.last_delivery,
            }
        )

    async def sim_health(self, request: web.Request) -> web.Response:
        """Liveness probe."""
        return web.json_response({"status": "ok"})

    async def sim_event_body(self, request: web.Request) -> web.Response:
        """The exact serialised bytes of one event (what a webhook receives)."""
        try:
            body = self.world.body(request.match_info["id"])
        except KeyError:
            return StripeError(404, "No such event", code="resource_missing").response()
        return web.Response(body=body, content_type="application/json", charset="utf-8")


class SimulatorServer:
    """Runs a :class:`SimulatorApp` on its own event loop in a background thread.

    Made for tests that use the (blocking) ``stripe`` client: ``with SimulatorServer(world)
    as sim: client = stripe.StripeClient("sk_test_x", base_addresses={"api": sim.url})``.
    """

    def __init__(
        self,
        world: World | None = None,
        *,
        config: WorldConfig | None = None,
        settings: ServerSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.world = world if world is not None else generate_world(config or WorldConfig())
        self.app = SimulatorApp(self.world, settings)
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL (``http://host:port``) to give the stripe client as its API base."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> SimulatorServer:
        """Start serving; returns once the port is bound."""
        self._thread = threading.Thread(target=self._serve, name="stripe-simulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError("stripe simulator failed to start") from self._error
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._runner = web.AppRunner(self.app.make_app(), access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            loop.run_until_complete(site.start())
            server = getattr(site, "_server", None)
            if server is not None and server.sockets:
                self.port = server.sockets[0].getsockname()[1]
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def call(self, coro: Awaitable[Any]) -> Any:
        """Run a coroutine on the server's loop from another thread and wait for it."""
        assert self._loop is not None, "server not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()  # type: ignore[arg-type]

    def deliver_pending(self, **kwargs: Any) -> DeliveryReport:
        """Deliver pending events to the configured (or given) webhook URL."""
        result: DeliveryReport = self.call(self.app.deliver_pending(**kwargs))
        return result

    def advance(self, seconds: int) -> int:
        """Move the world clock forward; returns the new ``now``."""
        self.app.now += seconds
        return self.app.now

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def event_bodies(world: World) -> list[tuple[str, bytes]]:
    """``(event id, exact body bytes)`` for every event of ``world`` (convenience re-export)."""
    return world.event_bodies()


__all__ = [
    "ServerSettings",
    "SimulatorApp",
    "SimulatorServer",
    "StripeError",
    "event_bodies",
    "is_basil",
]
