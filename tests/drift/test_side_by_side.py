"""Unit test: the pass's lists run side by side and the first failure stops the others."""

from __future__ import annotations

import asyncio

import pytest

from services.drift.detector import side_by_side


async def test_first_failure_cancels_the_others() -> None:
    stopped = asyncio.Event()
    pages: list[int] = []

    async def pages_on() -> None:
        try:
            for page in range(1000):
                pages.append(page)
                await asyncio.sleep(0.01)
        finally:
            stopped.set()

    async def fails() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("stripe kept failing")

    with pytest.raises(RuntimeError, match="stripe kept failing"):
        await side_by_side(pages_on(), fails())
    assert stopped.is_set()  # cancelled and awaited before the failure was raised
    seen = len(pages)
    await asyncio.sleep(0.05)
    assert len(pages) == seen < 1000


async def test_results_in_order() -> None:
    async def value(v: int, pause: float) -> int:
        await asyncio.sleep(pause)
        return v

    assert await side_by_side(value(1, 0.02), value(2, 0.0), value(3, 0.01)) == [1, 2, 3]
