"""``python -m services.backoffice_gateway operators ...`` against a real database."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from services.backoffice_gateway.__main__ import main
from services.backoffice_gateway.auth.passwords import verify_password
from services.backoffice_gateway.operators import bootstrap_admin
from services.backoffice_gateway.store import Store, repository
from tests.conftest import REPO_ROOT
from tests.helpers import query

pytestmark = pytest.mark.integration


def run(args: list[str], capsys: pytest.CaptureFixture[str], stdin: str = "") -> tuple[int, str]:
    if stdin:
        sys.stdin = io.StringIO(stdin)
    try:
        code = main(args)
    finally:
        sys.stdin = sys.__stdin__
    out = capsys.readouterr()
    return code, out.out + out.err


def test_operator_lifecycle(database_url: str, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    code, out = run(["operators", "create", "Alice", "--role", "admin"], capsys)
    assert code == 0 and out.startswith("created alice (admin); password: ")
    password = out.rsplit(" ", 1)[1].strip()
    stored = query(database_url, "SELECT password_hash, role FROM gateway.operators "
                                 "WHERE username = 'alice'")
    assert stored[0][1] == "admin"
    assert password not in stored[0][0] and verify_password(password, stored[0][0])
    assert run(["operators", "create", "alice"], capsys)[0] == 2  # taken
    code, out = run(["operators", "create", "bob", "--password-stdin"], capsys, "too short\n")
    assert code == 2 and "at least 12" in out
    code, out = run(["operators", "reset-password", "alice", "--password-stdin"], capsys,
                    "a brand new passphrase\n")
    assert code == 0
    stored = query(database_url, "SELECT password_hash FROM gateway.operators "
                                 "WHERE username = 'alice'")
    assert verify_password("a brand new passphrase", stored[0][0])
    code, token = run(["operators", "issue-token", "alice", "--name", "ci"], capsys)
    assert code == 0 and token.startswith("gwt_")
    hashes = query(database_url, "SELECT token_hash FROM gateway.api_tokens")
    assert token.strip() not in {h[0] for h in hashes}
    assert run(["operators", "disable", "alice"], capsys)[0] == 0
    code, listing = run(["operators", "list"], capsys)
    assert "alice\tadmin\tdisabled" in listing
    assert run(["operators", "issue-token", "alice"], capsys)[0] == 2  # disabled
    assert run(["operators", "disable", "nobody"], capsys)[0] == 2
    assert run(["operators", "enable", "alice"], capsys)[0] == 0


def test_first_admin_only_on_an_empty_database(database_url: str) -> None:
    store = Store(database_url)
    first = bootstrap_admin(store)
    assert first is not None and first.username == "admin"
    assert bootstrap_admin(store) is None
    with store.session() as db:
        assert repository.count_operators(db) == 1
    store.dispose()


def test_cli_refuses_an_unknown_command() -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "services.backoffice_gateway", "operators", "frobnicate"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert answer.returncode == 2 and "invalid choice" in answer.stderr


def test_audit_log_is_append_only(database_url: str) -> None:
    store = Store(database_url)
    with store.session() as db:
        repository.append_audit(db, operator_id=None, operator="x", action="a", target="t",
                                params={}, result="succeeded", detail="", ip=None)
        db.commit()
    store.dispose()
    import psycopg

    for statement in ("UPDATE gateway.audit_log SET result = 'failed'",
                      "DELETE FROM gateway.audit_log", "TRUNCATE gateway.audit_log"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            query(database_url, statement)
