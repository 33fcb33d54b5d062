"""Test hooks of the REST simulator (``/_sim/...``): make Stripe and the suite disagree on purpose.

Drift detection can only be tested against a Stripe that changes behind the suite's back:

* ``POST /_sim/subscriptions/{id}/change`` changes a subscription (quantity, status, price,
  cancel at period end) *without its webhook*: the event exists in ``events.list`` (so a sync
  can recover it) but is held back from delivery; ``{"event": false}`` changes the object with
  no event at all (state drift nothing can recover).
* ``POST /_sim/suppress`` holds back chosen pending events (by id, or every event about one
  object) — a dropped webhook; ``POST /_sim/release`` delivers held events late — a delay.
* ``POST /_sim/events/{id}/redeliver`` posts one event again, optionally with an altered body
  (same id, different bytes: a payload divergence).
* ``POST /_sim/faults`` swaps the API fault knobs (429/5xx rates, request rate limit) and the
  delivery fault knobs at run time.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .delivery import DeliveryFaults, WebhookDeliverer, alter_body
from .diff import previous_attributes
from .faults import ApiFaults, FaultInjector

if TYPE_CHECKING:
    from .server import SimulatorApp

JSON = dict[str, Any]


def add_routes(router: web.UrlDispatcher, app: SimulatorApp) -> None:
    """Register the hooks on ``router`` (they bypass auth and fault injection: not ``/v1``)."""
    hooks = _Hooks(app)
    router.add_post("/_sim/subscriptions/{id}/change", hooks.change_subscription)
    router.add_post("/_sim/suppress", hooks.suppress)
    router.add_post("/_sim/release", hooks.release)
    router.add_post("/_sim/events/{id}/redeliver", hooks.redeliver)
    router.add_post("/_sim/faults", hooks.set_faults)


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": {"type": "sim_error", "message": message}}, status=status)


def _concerns(event: JSON, object_id: str) -> bool:
    obj = event["data"]["object"]
    if obj.get("id") == object_id:
        return True
    return any(obj.get(name) == object_id for name in ("subscription", "customer", "charge"))


def _dataclass_from(cls: type[Any], body: Any) -> Any:
    """Build a frozen fault dataclass from JSON, refusing unknown fields (a typo is a 400)."""
    if not isinstance(body, dict):
        raise ValueError(f"{cls.__name__} must be an object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(body) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**body)


class _Hooks:
    def __init__(self, app: SimulatorApp) -> None:
        self.app = app

    async def _body(self, request: web.Request) -> JSON:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    async def change_subscription(self, request: web.Request) -> web.Response:
        """Change a subscription; its event (if any) is recorded but not delivered unless
        ``webhook`` is true."""
        app = self.app
        sid = request.match_info["id"]
        old = app.world.objects.get("subscription", {}).get(sid)
        if old is None:
            return _bad(f"No such subscription: '{sid}'", 404)
        body = await self._body(request)
        new = copy.deepcopy(old)
        if "quantity" in body:
            from .server import set_quantity

            set_quantity(new, int(body["quantity"]))
        if "status" in body:
            new["status"] = str(body["status"])
        if "cancel_at_period_end" in body:
            flag = bool(body["cancel_at_period_end"])
            new["cancel_at_period_end"] = flag
            period_end = new.get("current_period_end") or new["items"]["data"][0].get(
                "current_period_end"
            )
            new["cancel_at"] = period_end if flag else None
        if "price" in body:
            price = app.world.objects.get("price", {}).get(str(body["price"]))
            if price is None:
                return _bad(f"No such price: '{body['price']}'", 404)
            item = new["items"]["data"][0]
            item["price"] = price
            if "plan" in item:
                item["plan"] = {**item["plan"], "id": price["id"], "amount": price["unit_amount"]}
            if new.get("plan"):
                new["plan"] = item.get("plan", new["plan"])
        prev = previous_attributes(old, new)
        app.world.objects["subscription"][sid] = new
        event_id = None
        if body.get("event", True) and prev:
            version = app._version_for(new.get("customer"))
            event = app.world.new_event(
                app.now, version, "customer.subscription.updated", new, prev
            )
            event_id = event["id"]
            if body.get("webhook", False):
                app._auto_deliver()
            else:
                app.suppressed.add(event_id)
        return web.json_response({"subscription": new, "event_id": event_id})

    async def suppress(self, request: web.Request) -> web.Response:
        """Hold back pending events: ``{"event_ids": [...]}`` and/or ``{"object_id": id}``."""
        app = self.app
        body = await self._body(request)
        ids = {str(i) for i in body.get("event_ids") or []}
        object_id = body.get("object_id")
        if object_id:
            ids.update(ev["id"] for ev in app.world.events if _concerns(ev, str(object_id)))
        unknown = [i for i in ids if i not in app.world.index]
        if unknown:
            return _bad(f"unknown event ids: {sorted(unknown)[:5]}", 404)
        app.suppressed.update(ids)
        return web.json_response({"suppressed": sorted(ids)})

    async def release(self, request: web.Request) -> web.Response:
        """Deliver held events now (all, or ``{"event_ids": [...]}``): a late webhook."""
        app = self.app
        body = await self._body(request)
        wanted = {str(i) for i in body.get("event_ids") or []} or set(app.suppressed)
        ids = [ev["id"] for ev in app.world.events if ev["id"] in wanted & app.suppressed]
        app.suppressed.difference_update(ids)
        report = await self._deliver([(i, app.world.body(i)) for i in ids])
        return web.json_response({"released": ids, "report": report})

    async def redeliver(self, request: web.Request) -> web.Response:
        """POST one event again; ``{"alter": true}`` changes its body (same id)."""
        app = self.app
        eid = request.match_info["id"]
        try:
            raw = app.world.body(eid)
        except KeyError:
            return _bad(f"No such event: '{eid}'", 404)
        body = await self._body(request)
        payload = alter_body(raw) if body.get("alter") else raw
        report = await self._deliver([(eid, payload)])
        return web.json_response({"event_id": eid, "altered": payload != raw, "report": report})

    async def _deliver(self, batch: list[tuple[str, bytes]]) -> JSON:
        settings = self.app.settings
        if not settings.webhook_url or not settings.webhook_secret:
            raise web.HTTPBadRequest(text="no webhook URL/secret configured")
        deliverer = WebhookDeliverer(settings.webhook_url, settings.webhook_secret)
        report = await deliverer.deliver(batch)
        return report.as_dict()

    async def set_faults(self, request: web.Request) -> web.Response:
        """``{"api": {...ApiFaults}, "delivery": {...DeliveryFaults}}``: replace the knobs."""
        app = self.app
        body = await self._body(request)
        try:
            if "api" in body:
                app.settings.api_faults = _dataclass_from(ApiFaults, body["api"])
                app.faults = FaultInjector(app.settings.api_faults)
            if "delivery" in body:
                app.settings.delivery_faults = _dataclass_from(DeliveryFaults, body["delivery"])
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))
        return web.json_response(
            {
                "api": dataclasses.asdict(app.settings.api_faults),
                "delivery": dataclasses.asdict(app.settings.delivery_faults),
            }
        )
