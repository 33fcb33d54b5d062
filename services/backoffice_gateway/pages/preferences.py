"""The operator's own Preferences page: the UTC offset their times are shown in (beside UTC).

Any signed-in operator, viewer or admin, may change their own; the form posts the session's
CSRF token (checked by the auth middleware) and the change is audited by
``preferences.set_utc_offset``, the function the JSON API uses too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from services.backoffice_gateway import preferences
from services.backoffice_gateway.auth.decorators import login_required
from services.backoffice_gateway.auth.middleware import client_ip
from services.backoffice_gateway.auth.principal import current_principal
from services.backoffice_gateway.context import gateway
from services.backoffice_gateway.errors import bad_request
from services.backoffice_gateway.formatting import offset_label
from services.backoffice_gateway.pages import bp
from services.backoffice_gateway.pages.render import page


def _form_offset() -> int | None:
    """The form's choice: "" for none (the browser's offset), else minutes east of UTC."""
    raw = request.form.get("utc_offset_minutes", "").strip()
    if raw == "":
        return None
    body = raw[1:] if raw[:1] in "+-" else raw
    if not body.isdigit() or len(body) > 4:
        raise bad_request("utc_offset_minutes: a whole number of minutes",
                          parameter="utc_offset_minutes")
    return int(raw)


@bp.get("/preferences")
@login_required
def preferences_form() -> str:
    principal = current_principal()
    assert principal is not None  # login_required ran first
    minutes = principal.utc_offset_minutes
    return page(
        "preferences.html",
        choices=preferences.offset_choices(),
        current=offset_label(minutes) if minutes is not None else None,
        saved=request.args.get("saved") == "1",
        example_time=datetime.now(UTC),
    )


@bp.post("/preferences")
@login_required
def preferences_submit() -> Response:
    """Saved, then redirected (post/redirect/get): the page shows the stored preference."""
    principal = current_principal()
    assert principal is not None
    preferences.set_utc_offset(gateway().store, principal, _form_offset(), client_ip())
    return redirect(url_for("pages.preferences_form", saved=1), code=303)
