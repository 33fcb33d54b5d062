"""``python -m services.backoffice_gateway serve`` (gunicorn) and ``operators ...``.

``serve`` creates the first admin on an empty database (password written once to
``GATEWAY_BOOTSTRAP_FILE``, mode 0600, for ``make run`` to print; never logged), then runs
gunicorn with the app factory. ``operators create|disable|enable|reset-password|issue-token|
list`` administer operators; new passwords and tokens are printed once on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from services.backoffice_gateway.auth.passwords import WeakPassword
from services.backoffice_gateway.config import GatewayConfig
from services.backoffice_gateway.operators import (
    bootstrap_admin,
    create,
    disable,
    enable,
    issue_token,
    list_all,
    reset_password,
)
from services.backoffice_gateway.store import Store
from services.backoffice_gateway.store.repository import DuplicateOperator, UnknownOperator
from services.backoffice_gateway.store.tables import ROLES
from services.common import multiproc_metrics
from services.common.config import env_optional
from services.common.logs import configure_logging


def _write_bootstrap(path: str, username: str, password: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{username} {password}\n")


def serve(config: GatewayConfig) -> int:
    # Before prometheus-client is imported (it picks its value store then) and before
    # gunicorn forks: the workers count in files the admin port adds up.
    multiproc_metrics.enable_in_this_process("gateway")
    from gunicorn.app.base import BaseApplication
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from services.backoffice_gateway import metrics
    from services.backoffice_gateway.app import create_app

    store = Store(config.database_url, pool_size=1)
    created = bootstrap_admin(store)
    store.dispose()
    target = env_optional("GATEWAY_BOOTSTRAP_FILE")
    if created is not None:
        if target:
            _write_bootstrap(target, created.username, created.password)
        else:
            print(f"first operator: {created.username} password: {created.password}",
                  file=sys.stderr, flush=True)

    health_store = Store(config.database_url, pool_size=1)

    def database_ok() -> bool:
        try:
            with health_store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def when_ready(server: Any) -> None:
        """In the master, once workers are up: the admin port (/metrics, /healthz)."""
        metrics.start_admin_server(
            config.host, config.admin_port, metrics.admin_wsgi(database_ok)
        )

    def child_exit(server: Any, worker: Any) -> None:
        metrics.worker_exited(worker.pid)

    class Gateway(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{config.host}:{config.port}")
            self.cfg.set("workers", config.workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 4)
            self.cfg.set("timeout", 60)
            self.cfg.set("accesslog", None)
            self.cfg.set("when_ready", when_ready)
            self.cfg.set("child_exit", child_exit)
            # gunicorn >= 25.1's runtime control socket (for `gunicornc`) is not used here: the
            # admin port serves health and metrics. Its default path ($HOME/.gunicorn) is not
            # writable in the image, where it logged "Control server error" at every start.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return create_app(config)

    Gateway().run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.backoffice_gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the back-office (gunicorn)")
    ops = sub.add_parser("operators", help="manage operators").add_subparsers(
        dest="action", required=True
    )
    c = ops.add_parser("create", help="create an operator; prints the password")
    c.add_argument("username")
    c.add_argument("--role", choices=ROLES, default="viewer")
    c.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    for name in ("disable", "enable"):
        ops.add_parser(name).add_argument("username")
    r = ops.add_parser("reset-password", help="new password; ends the operator's sessions")
    r.add_argument("username")
    r.add_argument("--password-stdin", action="store_true")
    t = ops.add_parser("issue-token", help="new API token; prints it once")
    t.add_argument("username")
    t.add_argument("--name", default="cli")
    ops.add_parser("list")
    args = parser.parse_args(argv)
    configure_logging("gateway", os.environ.get("LOG_LEVEL", "INFO"))
    config = GatewayConfig.from_env()
    if args.command == "serve":
        return serve(config)
    store = Store(config.database_url, pool_size=1)
    password = sys.stdin.readline().rstrip("\n") if getattr(args, "password_stdin", False) else None
    try:
        if args.action == "create":
            made = create(store, args.username, args.role, password)
            print(f"created {made.username} ({args.role}); password: {made.password}")
        elif args.action == "disable":
            disable(store, args.username)
            print(f"disabled {args.username}")
        elif args.action == "enable":
            enable(store, args.username)
            print(f"enabled {args.username}")
        elif args.action == "reset-password":
            made = reset_password(store, args.username, password)
            print(f"new password for {made.username}: {made.password}")
        elif args.action == "issue-token":
            print(issue_token(store, args.username, args.name))
        else:
            for line in list_all(store):
                state = "disabled" if line.disabled else "active"
                print(f"{line.username}\t{line.role}\t{state}\t{line.created_at}")
    except (UnknownOperator, DuplicateOperator, WeakPassword, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
