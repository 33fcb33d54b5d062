"""Login throttling per account and per IP address.

Failures are counted in ``gateway.login_attempts`` (shared by every worker process) over a
sliding window and since the last success; past the limit, further attempts are refused with
429 before the password is even checked, so guessing cannot continue at full speed from one
address or against one account.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from services.backoffice_gateway.config import GatewayConfig
from services.backoffice_gateway.errors import ApiError
from services.backoffice_gateway.store import repository


def check_allowed(db: Session, config: GatewayConfig, username: str, ip: str) -> None:
    window = timedelta(seconds=config.throttle_window_seconds)
    failures = repository.recent_failures(db, username, ip, window)
    if (
        failures.for_account >= config.throttle_account_failures
        or failures.for_ip >= config.throttle_ip_failures
    ):
        raise ApiError(
            429,
            "too_many_requests",
            "too many failed logins; try again later",
            retry_after=config.throttle_window_seconds,
        )
