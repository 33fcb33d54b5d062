"""The signed-in operator's own preferences (today: the UTC offset shown beside UTC times).

One function sets them for the JSON API (``POST /api/v1/me/preferences``) and the
Preferences page alike: checked, written, and audited (``set_preferences``, target
``operator:<name>``) like any change an operator makes, whatever their role.
"""

from __future__ import annotations

from services.backoffice_gateway.audit import audited
from services.backoffice_gateway.auth.principal import Principal
from services.backoffice_gateway.errors import bad_request
from services.backoffice_gateway.formatting import offset_label, valid_offset
from services.backoffice_gateway.store import repository
from services.backoffice_gateway.store.db import Store

#: The offsets time zones use (minutes east of UTC), for the page's choice list.
ZONE_OFFSETS = (
    -720, -660, -600, -570, -540, -480, -420, -360, -300, -240, -210, -180, -120, -60,
    0, 60, 120, 180, 210, 240, 270, 300, 330, 345, 360, 390, 420, 480, 525, 540, 570,
    600, 630, 660, 720, 765, 780, 840,
)


def offset_choices() -> list[tuple[int, str]]:
    return [(m, offset_label(m)) for m in ZONE_OFFSETS]


def checked_offset(minutes: int | None) -> int | None:
    """None (no preference: the browser's offset is used) or a real zone's offset."""
    if minutes is None:
        return None
    if not valid_offset(minutes) or minutes % 15:
        raise bad_request(
            "utc_offset_minutes: whole quarter hours from -720 (UTC-12:00) to 840 (UTC+14:00)",
            parameter="utc_offset_minutes",
        )
    return minutes


def set_utc_offset(store: Store, principal: Principal, minutes: int | None, ip: str) -> None:
    """Check, store and audit the operator's own UTC offset (a refusal is audited too)."""
    with audited(store, principal, "set_preferences", f"operator:{principal.username}",
                 {"utc_offset_minutes": minutes}, ip) as outcome:
        value = checked_offset(minutes)
        with store.session() as db:
            repository.set_utc_offset(db, principal.operator_id, value)
            db.commit()
        outcome.detail = "UTC offset " + (offset_label(value) if value is not None else "unset")


__all__ = ["ZONE_OFFSETS", "checked_offset", "offset_choices", "set_utc_offset"]
