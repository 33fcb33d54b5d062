"""One back-office over the whole suite for every test of this folder (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.harness import Backoffice, backoffice


@pytest.fixture(scope="session")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backoffice]:
    with backoffice(Path(tmp_path_factory.mktemp("office"))) as value:
        yield value
