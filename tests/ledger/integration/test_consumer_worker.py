"""The live consumer with its projection in a worker process (``LEDGER_CONSUMER_WORKERS=1``,
issue 12): the same failure handling as the thread - a database-side failure and an
unreadable message become dead letters without poisoning their batch - checked by running
test_failures' scenario against a ledger whose consumer projects in a process, whatever the
default is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.ledger.app import LedgerService
from tests.ledger.integration.test_failures import (  # noqa: F401 - the scenario's fixture
    publish,
)
from tests.ledger.integration.test_failures import (
    test_failing_messages_become_dead_letters_without_poisoning_the_batch as dead_letter_scenario,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def ledger(make_ledger: Callable[..., Any]) -> LedgerService:
    service = await make_ledger(consumer_workers=1)
    assert isinstance(service, LedgerService)
    assert service.consumer is not None and service.consumer.options.workers == 1
    return service


test_dead_letters_with_the_projection_in_a_worker_process = dead_letter_scenario
