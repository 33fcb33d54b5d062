"""``previous_attributes`` computation, the way Stripe reports changes in ``*.updated`` events."""

from __future__ import annotations

from typing import Any


def previous_attributes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Old values of the keys that changed between two renderings of one object.

    Nested hashes are diffed recursively (Stripe sends only the changed sub-keys, e.g.
    ``{"invoice_settings": {"default_payment_method": "pm_old"}}``) while lists are reported
    whole (``{"items": {"data": [<old items>]}}``), matching Stripe's webhook payloads.
    """
    prev: dict[str, Any] = {}
    for key, old in before.items():
        new = after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            prev[key] = previous_attributes(old, new)
        else:
            prev[key] = old
    for key in after:
        if key not in before:
            prev[key] = None
    return prev
