"""Services in Kubernetes wait for the migration Job: the wait ends exactly at the head."""

from __future__ import annotations

import pytest

from services.common.migrate import (
    current_revision,
    main,
    script_head,
    upgrade_to_head,
    wait_for_head,
)
from tests.servers import PostgresHandle, unique_name

pytestmark = pytest.mark.integration


def test_wait_ends_only_once_the_database_is_at_the_head(
    pg: PostgresHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg.create_database(unique_name("wait"))
    assert current_revision(url) is None
    assert wait_for_head(url, timeout=0.3, interval=0.1) is False
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["wait", "--timeout", "0.2"]) == 1
    upgrade_to_head(url)
    assert current_revision(url) == script_head(url)
    assert wait_for_head(url, timeout=0.3, interval=0.1) is True
    assert main(["wait", "--timeout", "0.2"]) == 0


def test_unreachable_database_is_a_failed_wait_not_a_crash() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    assert wait_for_head(url, timeout=0.2, interval=0.1) is False
