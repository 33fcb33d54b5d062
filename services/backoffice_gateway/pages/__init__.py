"""The back-office HTML pages: blueprint ``bp`` (registered by ``app.create_app``).

Pages are server-rendered from the same view-model functions as the JSON API
(``services.backoffice_gateway.views``), so a page and its ``/api/v1`` twin show the same
figures. Templates live in ``../templates``, our own CSS/JS in ``../static`` (the CSP allows
no inline script or style). Modules: ``urls`` (query-string state), ``render`` (filters and
common context), one module per page family, ``actions`` for the admin forms.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("pages", __name__, template_folder="../templates")

# Route modules register themselves on ``bp`` when imported.
from services.backoffice_gateway.pages import (  # noqa: E402
    accounts,
    actions,
    dashboard,
    lists,
    preferences,
    render,
)

__all__ = ["accounts", "actions", "bp", "dashboard", "lists", "preferences", "render"]
