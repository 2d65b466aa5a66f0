"""The batch engine: every line of a job answered once, as fast as the limits allow.

Each request goes through thrifty's cache (``Cache.aget_or_compute``), so identical lines are
answered once (coalesced while in flight, a hit afterwards) and an answer is durable before the
journal marks its line done (see :mod:`thrifty.batching.journal`). Upstream attempts run under
a concurrency cap and the RPM/TPM limiter, with retries from :mod:`thrifty.retry` (exponential
backoff with jitter, never shorter than ``Retry-After``); a 429 pauses every sender for its
``Retry-After``. A line that still fails becomes an error line; the rest of the job goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from thrifty.accounting.prices import PriceTable, billed_at_batch_rates
from thrifty.accounting.tokens import count_messages, count_text, usage_of
from thrifty.answer import Endpoint, read_answer, stored_answer
from thrifty.batching.jobfile import BatchRequest, output_line
from thrifty.batching.journal import Journal, JournalRecord
from thrifty.batching.limiter import BatchLimiter
from thrifty.cache import Cache, CacheStatus
from thrifty.errors import ConfigError, CorruptEntryError, ProviderError, UnknownModelError
from thrifty.policy import CachePolicy
from thrifty.providers.base import Provider
from thrifty.retry import RetryPolicy, call_with_retries, retry_after_of, status_of

T = TypeVar("T")

#: Maps a model name to the provider that answers it.
ProviderResolver = Callable[[str], Provider]

#: 429s with ``Retry-After`` one line waits out before they count as failed attempts.
MAX_RATE_LIMIT_WAITS = 50

#: Batches wait out long rate limits instead of failing lines (a gateway fails over instead).
DEFAULT_RETRY = RetryPolicy(num_retries=8, base_delay=0.5, max_delay=30.0, max_retry_after=300.0)


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """How a batch runs.

    Attributes:
        max_concurrency: the most upstream requests in flight at once.
        rpm, tpm: client-side limits (None: off).
        retry: retries per line.
        model_map: rename models before sending (``{"gpt-4o-mini": "smollm2"}``).
        inline_writes: store each answer in the cache on the event loop, the moment it is
            read (a SQLite commit, well under a millisecond), instead of on a writer thread
            that may wait milliseconds for the GIL while the loop reads other answers: the
            shortest window in which a crash loses a paid answer. For a process that runs
            only the batch (the command line), not for a gateway serving other requests.
        policy: the cache policy of every line (:mod:`thrifty.policy`, as for the gateway
            and ``thrifty.wrap``): a line sampled at ``temperature > 0`` is neither served
            from nor stored in the cache unless ``cache_temperature`` opts in.
    """

    max_concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    model_map: Mapping[str, str] = field(default_factory=dict)
    inline_writes: bool = False
    policy: CachePolicy = field(default_factory=CachePolicy)

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ConfigError("--max-concurrency must be at least 1")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one line (reported to the progress display as it happens)."""

    custom_id: str
    ok: bool
    #: "upstream", "cache", "deduplicated" (an identical line of this job) or "skipped" (done
    #: in an earlier run).
    source: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    #: an upstream answer billed at Batch API rates (OpenAI's flex tier): what those rates
    #: saved against the standard ones (also in ``saved_usd``)
    discount_usd: float = 0.0
    model: str = ""
    #: from the line's start to its answer (waits for limits and retries included)
    latency_ms: float = 0.0


@dataclass
class BatchSummary:
    """Totals of one run."""

    total: int = 0
    ok: int = 0
    failed: int = 0
    cached: int = 0
    deduplicated: int = 0
    skipped: int = 0
    upstream_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    #: of ``saved_usd``: what Batch API rates (a flex-tier answer) saved on paid lines
    discount_usd: float = 0.0
    wall_s: float = 0.0
    #: lines an earlier run had sent when it crashed, without an answer recorded: the upstream
    #: may have billed them (they are sent again).
    interrupted: int = 0

    def add(self, outcome: Outcome) -> None:
        if outcome.source == "skipped":
            self.skipped += 1
            return
        if outcome.ok:
            self.ok += 1
        else:
            self.failed += 1
        if outcome.source == "cache":
            self.cached += 1
        elif outcome.source == "deduplicated":
            self.deduplicated += 1
        self.tokens_in += outcome.tokens_in
        self.tokens_out += outcome.tokens_out
        self.cost_usd += outcome.cost_usd
        self.saved_usd += outcome.saved_usd
        self.discount_usd += outcome.discount_usd

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def single_provider(provider: Provider) -> ProviderResolver:
    """A resolver that sends every model to one provider (the embedded local model)."""
    return lambda _model: provider


def prompt_tokens(request: BatchRequest, body: Mapping[str, Any]) -> int:
    """Tokens a request sends, counted before it is sent (tiktoken)."""
    if request.endpoint == "chat":
        return count_messages(body.get("messages") or [])
    text = body.get("prompt") if request.endpoint == "completion" else body.get("input")
    if isinstance(text, list):
        return sum(count_text(str(t)) for t in text)
    return count_text("" if text is None else str(text))


#: Error codes of failures that carry no upstream status (declared once, as data).
ERROR_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (UnknownModelError, "model_not_found"),
    (ConfigError, "invalid_request"),
    (TimeoutError, "timeout"),
    (ProviderError, "provider_error"),
)
STATUS_CODES: Mapping[int, str] = {429: "rate_limit_exceeded", 404: "model_not_found"}


def error_of(exc: BaseException) -> tuple[int | None, Any, dict[str, str]]:
    """(upstream status, upstream body, {code, message}) for a line that failed."""
    status = status_of(exc)
    body = getattr(exc, "body", None)
    upstream = body.get("error") if isinstance(body, dict) else None
    code = upstream.get("code") if isinstance(upstream, dict) else None
    if not code and status is not None:
        code = STATUS_CODES.get(status, "upstream_error")
    if not code:
        code = next((c for t, c in ERROR_CODES if isinstance(exc, t)), "internal_error")
    message = upstream.get("message") if isinstance(upstream, dict) else None
    if status is not None and body is None:
        body = {"error": {"message": str(exc), "type": "upstream_error", "code": code}}
    return status, body, {"code": str(code), "message": str(message or exc)}


class BatchEngine:
    """Runs batch requests through a cache, a limiter and retries, recording each in a journal.

    Args:
        resolve: the provider for a model name.
        cache: answers identical requests once and keeps paid answers durable (use a SQLite,
            Redis or PostgreSQL cache for crash safety; a memory cache still deduplicates).
        journal: where finished lines are committed.
        settings: concurrency, limits, retries, model renames.
        prices: to value tokens spent and saved (default: the cache's table).
        on_outcome: called with each line's :class:`Outcome` as it finishes.
    """

    def __init__(
        self,
        resolve: ProviderResolver,
        cache: Cache,
        journal: Journal,
        settings: BatchSettings | None = None,
        *,
        prices: PriceTable | None = None,
        on_outcome: Callable[[Outcome], Any] | None = None,
    ) -> None:
        self.resolve = resolve
        self.cache = cache
        self.journal = journal
        self.settings = settings or BatchSettings()
        self.prices = prices or cache.prices
        self.on_outcome = on_outcome
        self.limiter = BatchLimiter(self.settings.rpm, self.settings.tpm)
        self.summary = BatchSummary()
        self._slots = asyncio.Semaphore(self.settings.max_concurrency)
        # One writer thread for answers (the cache) and one for progress (the journal): writes
        # to a file never wait for each other's SQLite locks, an answer never waits behind
        # bookkeeping, and neither waits behind other work in the default thread pool.
        self._answer_thread = ThreadPoolExecutor(1, thread_name_prefix="thrifty-batch-answers")
        self._journal_thread = ThreadPoolExecutor(1, thread_name_prefix="thrifty-batch-journal")
        self._answered: set[str] = set()

    # ------------------------------------------------------------ planning
    def body_of(self, request: BatchRequest) -> dict[str, Any]:
        body = dict(request.body)
        body["model"] = self.settings.model_map.get(body["model"], body["model"])
        return body

    def key_of(self, request: BatchRequest) -> str:
        namespace = self.settings.policy.namespace
        return self.cache.key(self.body_of(request), kind=request.endpoint, namespace=namespace)

    def policy_of(self, request: BatchRequest, body: Mapping[str, Any]) -> CachePolicy:
        """The cache policy of one line: the job's, with the temperature rule applied."""
        if request.endpoint == Endpoint.EMBEDDINGS:  # not sampled
            return self.settings.policy
        return self.settings.policy.for_temperature(body.get("temperature"))

    async def run(self, requests: Sequence[BatchRequest], *, resume: bool = False) -> BatchSummary:
        """Answer every request not already done; returns the totals of this run."""
        started = time.perf_counter()
        self.summary = BatchSummary(total=len(requests))
        done = await self._journaled(self.journal.finished) if resume else {}
        if resume:
            self.summary.interrupted = len(await self._journaled(self.journal.take_interrupted))
        if not resume:
            await self._journaled(self.journal.reset)
        queue: asyncio.Queue[tuple[BatchRequest, str]] = asyncio.Queue()
        for request in requests:
            key = self.key_of(request)
            previous = done.get(request.custom_id)
            if previous is not None and previous == (key, True):
                self._report(Outcome(request.custom_id, True, "skipped"))
            else:
                queue.put_nowait((request, key))
        # Twice the concurrency in workers: lines waiting out a backoff or an identical line's
        # answer hold a worker but not an upstream slot.
        workers = [
            asyncio.create_task(self._worker(queue))
            for _ in range(min(queue.qsize(), 2 * self.settings.max_concurrency))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            self._answer_thread.shutdown(wait=True)
            self._journal_thread.shutdown(wait=True)
            self.summary.wall_s = time.perf_counter() - started
        return self.summary

    def _note_sent(self, custom_id: str) -> None:
        """Journal that a line is being sent, without delaying the send (bookkeeping for the
        report after a crash; the answer's own durability does not depend on it)."""
        future = self._journal_thread.submit(self.journal.mark_sent, custom_id)
        future.add_done_callback(lambda f: f.exception())  # a failed note is only a note

    async def _journaled(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._journal_thread, fn, *args)

    async def _worker(self, queue: asyncio.Queue[tuple[BatchRequest, str]]) -> None:
        while True:
            try:
                request, key = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await self._answer(request, key)

    def _report(self, outcome: Outcome) -> None:
        self.summary.add(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    # ------------------------------------------------------------ one line
    def price_name(self, model: str) -> str | None:
        """The name ``model``'s answers are priced under (None: free, e.g. the local model)."""
        priced = getattr(self.resolve, "price_name", None)
        return priced(model) if callable(priced) else model

    async def _answer(
        self, request: BatchRequest, key: str, *, again: bool = False, started: float = 0.0
    ) -> None:
        started = started or time.perf_counter()
        body = self.body_of(request)
        model = self.price_name(body["model"])
        policy = self.policy_of(request, body)
        try:
            if policy.read:
                value, status = await self.cache.aget_or_compute(
                    key,
                    lambda: self._answer_durably(request, body, key, model, policy),
                    namespace=policy.namespace,
                    store=False,
                )
            else:
                value = await self._answer_durably(request, body, key, model, policy)
                status = CacheStatus.MISS
        except Exception as exc:  # one failed line never stops the job
            await self._fail(request, key, exc)
            return
        # A fresh answer is the upstream's to shape; a stored one is checked before it is used.
        response = value if status == "miss" else read_answer(request.endpoint, value)
        if response is None:  # an entry of the wrong shape some other writer left: a miss
            if not again:
                await self.cache.adelete(key)
                await self._answer(request, key, again=True, started=started)
                return
            error = CorruptEntryError(f"a cached {request.endpoint} answer has the wrong shape")
            await self._fail(request, key, error)
            return
        tokens_in, tokens_out = usage_of(response) or (0, 0)
        cost = self.prices.cost(model, tokens_in, tokens_out, batch=billed_at_batch_rates(response))
        discount = self.prices.cost(model, tokens_in, tokens_out) - cost
        if status == "miss":
            source = "upstream"
        elif status == "coalesced" or key in self._answered:
            source = "deduplicated"
        else:
            source = "cache"
        self._answered.add(key)
        line = output_line(request.custom_id, status_code=200, body=response)
        record = JournalRecord(
            request.custom_id, key, True, line, tokens_in, tokens_out,
            cost if source == "upstream" else 0.0, source,
        )  # fmt: skip
        await self._journaled(self.journal.record, record)
        paid = source == "upstream"
        self._report(
            Outcome(
                request.custom_id,
                True,
                source,
                tokens_in if paid else 0,
                tokens_out if paid else 0,
                cost if paid else 0.0,
                discount if paid else cost,
                discount if paid else 0.0,
                str(body.get("model") or ""),
                (time.perf_counter() - started) * 1000.0,
            )
        )

    async def _fail(self, request: BatchRequest, key: str, exc: BaseException) -> None:
        code, err_body, error = error_of(exc)
        line = output_line(request.custom_id, status_code=code, body=err_body, error=error)
        record = JournalRecord(request.custom_id, key, False, line)
        await self._journaled(self.journal.record, record)
        self._report(Outcome(request.custom_id, False, "upstream"))

    async def _answer_durably(
        self,
        request: BatchRequest,
        body: dict[str, Any],
        key: str,
        model: str | None,
        policy: CachePolicy,
    ) -> Any:
        """The upstream's answer, stored in the cache before anyone learns of it.

        The write goes through the engine's own answer thread (one at a time), not a thread
        per answer: concurrent SQLite writers wait for each other in sleeps of milliseconds,
        and that wait is the window in which a crash loses an answer already paid for."""
        started = time.perf_counter()
        value = stored_answer(await self._call_upstream(request, body))
        if not policy.write:
            return value
        tokens_in, tokens_out = usage_of(value) or (0, 0)
        store = partial(
            self.cache.set,
            key,
            value,
            namespace=policy.namespace,
            ttl=policy.ttl,
            latency_ms=(time.perf_counter() - started) * 1000,
            model=model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
        )
        if self.settings.inline_writes:
            store()
        else:
            await asyncio.get_running_loop().run_in_executor(self._answer_thread, store)
        return value

    def _wait_out(self, exc: BaseException, waits: int) -> bool:
        """On a 429, pause every sender for its ``Retry-After``. True when the request should
        then simply go again: a 429 that says how long to wait is the provider's schedule, not a
        failure, so it neither uses up a retry nor grows the backoff (up to a bound)."""
        if status_of(exc) != 429:
            return False
        self.summary.rate_limited += 1
        wait = retry_after_of(exc)
        if wait is None:
            return False  # no schedule given: back off as for any retryable error
        self.limiter.pause(wait)
        return wait <= self.settings.retry.max_retry_after and waits < MAX_RATE_LIMIT_WAITS

    async def _call_upstream(self, request: BatchRequest, body: dict[str, Any]) -> Any:
        provider = self.resolve(body["model"])
        method = getattr(provider, request.endpoint)
        # Counting tokens costs tiktoken's load (~0.5 s) and CPU: only a TPM limit needs it.
        estimate = prompt_tokens(request, body) if self.limiter.tokens is not None else 0

        async def attempt() -> Any:
            waits, marked = 0, False
            while True:
                async with self._slots:
                    await self.limiter.acquire(estimate)
                    self.summary.upstream_calls += 1
                    if not marked:  # so a resume can tell what a crash may have billed
                        self._note_sent(request.custom_id)
                        marked = True
                    try:
                        answer = await method(dict(body))
                        break
                    except Exception as exc:
                        self.limiter.settle(estimate, 0, 0)  # refused: its tokens were not used
                        if not self._wait_out(exc, waits):
                            raise
                        waits += 1  # then wait in limiter.acquire with every other sender
            if self.limiter.tokens is not None:
                tokens_in, tokens_out = usage_of(answer) or (estimate, 0)
                self.limiter.settle(estimate, tokens_in, tokens_out)
            return answer

        def count_retry(_attempt: int, _exc: BaseException, _delay: float) -> None:
            self.summary.retries += 1

        return await call_with_retries(attempt, self.settings.retry, on_retry=count_retry)
