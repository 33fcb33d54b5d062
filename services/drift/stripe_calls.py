"""Every Stripe request of the drift process goes through :class:`StripeCaller`.

Why one place: Stripe's rate limit is per account, not per request site. One token bucket
(``STRIPE_MAX_RPS``) is shared by the detector, the operations and the baseline import, so
running them together can never exceed the budget. A ``429`` pauses *every* caller for the
``Retry-After`` the answer gives (or a short default), not only the one that got it; ``5xx``
and connection failures are retried with jittered exponential backoff unless Stripe says
``Stripe-Should-Retry: false``. The stripe client's own retries are off (``max_retries=0``)
so that no request bypasses the bucket.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
import stripe
from prometheus_client import Counter

from services.common.grpc_errors import (
    FailedPrecondition,
    NotFound,
    ServiceError,
    Unavailable,
)

log = logging.getLogger(__name__)

REQUESTS = Counter("drift_stripe_requests_total", "Stripe API requests made by drift", ["outcome"])
PAGE_SIZE = 100

JSON = dict[str, Any]


class StripeUnavailable(Exception):
    """Stripe kept failing (5xx, timeouts, 429) after every retry: try again later."""


@dataclass(slots=True)
class RequestCount:
    """Requests made on behalf of one run or operation (incremented before each attempt)."""

    requests: int = 0
    retries: int = 0


class TokenBucket:
    """An asyncio token bucket: ``rate`` requests per second, bursts of ``burst``.

    ``hold(seconds)`` empties the bucket until then: what a ``429`` with ``Retry-After``
    means for the whole process.
    """

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst if burst is not None else min(rate, 10.0))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.held_until = 0.0
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self) -> None:
        """Wait for one token (callers queue in order on the lock)."""
        async with self._lock:
            while True:
                now = self.clock()
                if now < self.held_until:
                    await asyncio.sleep(self.held_until - now)
                    continue
                self._refill(now)
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self.tokens) / self.rate)

    def hold(self, seconds: float) -> None:
        """No token for anyone during ``seconds`` (then the bucket refills from empty)."""
        until = self.clock() + seconds
        if until > self.held_until:
            self.held_until = until
            self.tokens = 0.0
            self.updated = until


def _header(exc: stripe.StripeError, name: str) -> str | None:
    headers = exc.headers or {}
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


def retry_after(exc: stripe.StripeError, default: float = 1.0) -> float:
    """Seconds a 429 asks us to wait (``Retry-After``), bounded to [0.05, 60]."""
    raw = _header(exc, "Retry-After")
    try:
        value = float(raw) if raw is not None else default
    except ValueError:
        value = default
    return min(60.0, max(0.05, value))


def should_retry(exc: stripe.StripeError) -> bool:
    """Whether a failed request may be retried: Stripe's header decides when present, else
    429, 5xx and connection failures are retried and other 4xx are not."""
    header = _header(exc, "Stripe-Should-Retry")
    if header is not None:
        return header.lower() == "true"
    if isinstance(exc, stripe.APIConnectionError):
        return True
    status = exc.http_status or 0
    return status == 429 or status >= 500


class StripeCaller:
    """Rate-limited, retrying JSON requests to Stripe (or the simulator)."""

    def __init__(
        self,
        client: stripe.StripeClient,
        bucket: TokenBucket,
        *,
        concurrency: int = 8,
        max_attempts: int = 8,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.total = RequestCount()
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="stripe")
        self._slots = asyncio.Semaphore(concurrency)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _call(
        self, method: str, path: str, params: JSON, decode: Callable[[bytes], Any] = orjson.loads
    ) -> JSON:
        """One HTTP exchange through the stripe client (in a worker thread).

        Reads (GET) take the client's streamed answer and parse the bytes with orjson: the
        client's own parse (``json.loads`` into ``OrderedDict``, for every answer) was most
        of drift's CPU on ~1 MB list pages. Streaming is how the client serves file
        downloads; the request, its headers, retries and the errors raised for a non-2xx
        answer (``_interpret_streaming_response``) are exactly the client's. The requestor
        is not a public attribute: a client without it gets the plain ``raw_request``.
        ``decode``: how the bytes become a dict (a list of known shape can skip fields).
        """
        requestor = getattr(self.client, "_requestor", None)
        if method.lower() != "get" or requestor is None:
            data = self.client.raw_request(method, path, **params).data
            return data if isinstance(data, dict) else {}
        response = requestor.request_stream(
            "get", path, params, base_address="api", usage=["raw_request"]
        )
        try:
            body = response.io.read()
        finally:
            response.io.close()
        try:
            parsed = decode(body)
        except (orjson.JSONDecodeError, msgspec.DecodeError):
            parsed = None
        if not isinstance(parsed, dict):
            raise stripe.APIError(f"invalid response body from {path}: not a JSON object")
        return parsed

    async def request(
        self,
        method: str,
        path: str,
        count: RequestCount | None = None,
        *,
        decode: Callable[[bytes], Any] = orjson.loads,
        **params: Any,
    ) -> JSON:
        """One API call, parsed (a GET's body by ``decode``); raises the last
        ``stripe.StripeError`` for a 4xx that must not be retried, ``StripeUnavailable``
        when retries ran out."""
        last: stripe.StripeError | None = None
        for attempt in range(self.max_attempts):
            await self.bucket.acquire()
            self.total.requests += 1
            if count is not None:
                count.requests += 1
                count.retries += 1 if attempt else 0
            try:
                async with self._slots:
                    loop = asyncio.get_running_loop()
                    parsed = await loop.run_in_executor(
                        self._executor, lambda: self._call(method, path, params, decode)
                    )
            except stripe.StripeError as exc:
                last = exc
                REQUESTS.labels(outcome=str(exc.http_status or "connection")).inc()
                if not should_retry(exc):
                    raise
                if (exc.http_status or 0) == 429:
                    wait = retry_after(exc)
                    self.bucket.hold(wait)
                    log.info("stripe rate limited, pausing", extra={"seconds": wait})
                else:
                    cap = min(self.backoff_max, self.backoff_base * 2**attempt)
                    await asyncio.sleep(random.uniform(cap / 2, cap))
                continue
            REQUESTS.labels(outcome="ok").inc()
            return parsed
        raise StripeUnavailable(f"stripe kept failing: {last}") from last

    async def pages(
        self,
        path: str,
        params: JSON,
        count: RequestCount | None = None,
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> AsyncIterator[list[JSON]]:
        """Every page of a list endpoint (100 per page, cursor paging)."""
        query = {**params, "limit": PAGE_SIZE}
        while True:
            page = await self.request("get", path, count, decode=decode, **query)
            data: list[JSON] = page.get("data", [])
            if data:
                yield data
            if not page.get("has_more") or not data:
                return
            query["starting_after"] = data[-1]["id"]

    async def pages_side_by_side(
        self,
        path: str,
        queries: list[JSON],
        count: RequestCount | None = None,
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> AsyncIterator[list[JSON]]:
        """Every page of several cursors of one list endpoint, walked concurrently.

        Why: one cursor is strictly sequential (each page names the last id of the one
        before), so a 1,000-page list costs 1,000 round trips end to end whatever the budget.
        Disjoint slices (``created`` ranges, see :func:`created_slices`) are independent
        cursors; their pages arrive interleaved, in no particular order. A bounded queue
        keeps at most a couple of pages per cursor in memory; the first failure is raised.
        """
        if len(queries) == 1:
            async for page in self.pages(path, queries[0], count, decode):
                yield page
            return
        queue: asyncio.Queue[list[JSON]] = asyncio.Queue(maxsize=2 * len(queries))

        async def walk(query: JSON) -> None:
            async for page in self.pages(path, query, count, decode):
                await queue.put(page)

        walkers = {asyncio.ensure_future(walk(q)) for q in queries}
        try:
            while walkers or not queue.empty():
                if not queue.empty():
                    yield queue.get_nowait()
                    continue
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, *walkers}, return_when=asyncio.FIRST_COMPLETED
                )
                finished = done - {getter}
                walkers -= finished
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
                for walker in finished:
                    walker.result()  # a failed cursor fails the whole list
        finally:
            for walker in walkers:
                walker.cancel()
            await asyncio.gather(*walkers, return_exceptions=True)


def created_slices(
    created: list[int], parts: int, min_per_part: int = 10 * PAGE_SIZE
) -> list[JSON]:
    """``created`` filters cutting the whole time line into at most ``parts`` slices.

    The cuts are quantiles of ``created`` (the times the caller expects, e.g. the ledger's
    subscriptions), so the slices are about equally long; the first and the last slice are
    open-ended, so together they cover every object whatever its time: a wrong guess only
    unbalances the slices, it never loses an object. Few objects: one unfiltered slice.
    """
    times = sorted(t for t in created if t > 0)
    parts = min(parts, len(times) // max(1, min_per_part))
    if parts <= 1:
        return [{}]
    cuts = sorted({times[len(times) * i // parts] for i in range(1, parts)})
    slices: list[JSON] = []
    low: int | None = None
    for cut in cuts:
        slices.append({"created": {"lt": cut} if low is None else {"gte": low, "lt": cut}})
        low = cut
    slices.append({"created": {"gte": low}})
    return slices


def service_error(exc: stripe.StripeError) -> ServiceError:
    """The gRPC-facing error for a Stripe refusal (message safe to show): the one mapping
    used by the operations and by disaster recovery."""
    message = exc.user_message or str(exc)
    if isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 404:
        return NotFound(message)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return FailedPrecondition(f"stripe refused the credentials: {message}")
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError | stripe.APIError):
        return Unavailable(f"stripe unavailable: {message}")
    return FailedPrecondition(f"stripe refused: {message}")
