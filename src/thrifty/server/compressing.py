"""The compression stage: a chat request's RAG context cut to what its question needs.

It sits in the chain's head, after ``ReadRequest`` and before the cache, for three reasons:

- the answer is stored under the original request plus its compression settings (the given
  documents, ratio, floor, embedder): only the same request compressed the same way hits, so a
  request that asked for the full context (``X-Thrifty-Compression: off``) or another ratio is
  never served an answer made from a different context. A caller that opts in
  (``X-Thrifty-Compression-Key: compressed`` or ``compression.key: compressed``) keys on the
  compressed prompt instead: requests whose contexts compress to the same prompt share an
  answer (compression is deterministic, so that key is as exact as the prompt sent);
- with the document cache warm compression costs a few ms, small next to the upstream call a
  hit saves;
- one stage serves the plain and the streamed chains, and the key's limits (``Reserve``) are
  taken on the prompt that is really sent.

The saving, the prompt tokens cut priced at the answering model's input price, is credited
(mechanism ``compressed``) only when the request reached an upstream: a cache hit saves the
whole call and is credited as a hit.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import anyio

from thrifty.compression import Compressor
from thrifty.compression.chat import ContextError, ContextPlan, Marked, find_context, rewrite
from thrifty.compression.llmlingua import LLMLingua2Compressor
from thrifty.errors import ConfigError, ProviderUnavailableError
from thrifty.semantic.static import static_table_ready
from thrifty.server.context import Handler, RequestContext, Stage
from thrifty.server.errors import APIError
from thrifty.server.mechanisms import CompressionOptions, CompressionSettings
from thrifty.server.metrics import GatewayMetrics
from thrifty.server.pricing import Pricer
from thrifty.server.schemas import ContextDocument, ThriftyOptions

log = logging.getLogger("thrifty.server")

COMPRESSION_HEADER = "x-thrifty-compression"
KEY_HEADER = "x-thrifty-compression-key"
#: The savings mechanism this stage credits (``thrifty_savings_usd{mechanism=...}``).
MECHANISM = "compressed"


def requested_key(raw: str | None, default: str) -> str:
    """The per-request ``X-Thrifty-Compression-Key``: ``original`` or ``compressed``.

    Raises:
        APIError: 400 for anything else.
    """
    if raw is None:
        return default
    word = raw.strip().lower()
    if word not in ("original", "compressed"):
        raise APIError(
            400,
            f"header X-Thrifty-Compression-Key: must be original or compressed, not {raw!r}",
            param=KEY_HEADER,
        )
    return word


def requested(raw: str | None) -> float | bool | None:
    """The per-request header: ``off`` (False), a ratio in (0, 1], or None when absent.

    Raises:
        APIError: 400 for anything else.
    """
    if raw is None:
        return None
    word = raw.strip().lower()
    if word in ("off", "false", "0", "no"):
        return False
    if word in ("on", "true", "yes"):
        return True
    try:
        ratio = float(word)
    except ValueError:
        ratio = -1.0
    if not 0.0 < ratio <= 1.0:
        raise APIError(
            400,
            f"header X-Thrifty-Compression: must be off, on or a ratio in (0, 1], not {raw!r}",
            param=COMPRESSION_HEADER,
        )
    return ratio


def _marks(options: ThriftyOptions | None) -> list[Marked]:
    marks: list[Marked] = []
    for entry in (options.context if options is not None else None) or []:
        if isinstance(entry, int):
            marks.append(Marked(message=entry))
        elif isinstance(entry, str):
            marks.append(Marked(text=entry))
        elif isinstance(entry, ContextDocument):
            marks.append(Marked(entry.message, entry.text, entry.id, entry.title))
    return marks


class Compress(Stage):
    """Compresses the RAG context of chat requests where the config or the request asks.

    Args:
        settings: the ``compression:`` block.
        pricer: prices the prompt tokens saved.
        metrics: ``thrifty_savings_usd{mechanism="compressed"}``.
    """

    def __init__(
        self,
        next: Handler,
        *,
        settings: CompressionSettings,
        pricer: Pricer,
        metrics: GatewayMetrics,
    ) -> None:
        super().__init__(next)
        self.settings = settings
        self.pricer = pricer
        self.metrics = metrics
        self._compressor: Compressor | LLMLingua2Compressor | None = None
        self._lock = threading.Lock()
        self._building: threading.Thread | None = None
        if settings.llmlingua2_model is not None:  # a missing folder or package fails here
            try:
                self._compressor = LLMLingua2Compressor(settings.llmlingua2_model)
            except ProviderUnavailableError as exc:
                raise ConfigError(f"compression.llmlingua2_model: {exc}") from exc
        elif settings.any_enabled() and self._static_missing():
            with self._lock:  # start the one-off build now, not on the first request
                self._build_static_in_background()

    def compressor(self) -> Compressor | LLMLingua2Compressor | None:
        """Built on first use (loading the embedder takes a while), once per worker; None while
        the static table is still being built (see :meth:`_build_static_in_background`)."""
        with self._lock:
            if self._compressor is None:
                if self._building is not None or self._static_missing():
                    self._build_static_in_background()
                    return None
                self._compressor = Compressor(self.settings.embedder)
            return self._compressor

    def _static_missing(self) -> bool:
        return self.settings.embedder == "static" and not static_table_ready()

    def _build_static_in_background(self) -> None:
        """Distils the static table on a thread (caller holds the lock), once per worker.

        Why: the first build takes one to a few minutes of CPU, and a request that waited for it
        would time out at its client. Until it is done, contexts go upstream whole and the
        response says ``X-Thrifty-Compression: warming``; a build that fails is logged and
        leaves them whole (``thrifty embedder build-static`` says why).
        """
        if self._building is not None:
            return

        def build() -> None:
            try:
                compressor = Compressor("static")
            except Exception:  # a failed build leaves compression off, never a request failed
                log.exception("compression: building the static table failed; contexts pass whole")
                return
            with self._lock:
                self._compressor = compressor
            log.info("compression: static table ready")

        log.info("compression: building the static table in the background (once, minutes)")
        self._building = threading.Thread(target=build, name="thrifty-static-table", daemon=True)
        self._building.start()

    async def __call__(self, ctx: RequestContext) -> Any:
        op = ctx.operation
        if op is None or op.method != "chat":
            return await self.next(ctx)
        asked = requested(ctx.request.headers.get(COMPRESSION_HEADER))
        options = self.settings.for_model(ctx.model)
        marks = _marks(ctx.options)
        on = options.enabled if asked is None else asked is not False
        if not on and not marks:
            return await self.next(ctx)
        ratio = asked if isinstance(asked, float) else options.ratio
        try:
            plan = find_context(
                ctx.body["messages"],
                marks,
                question=ctx.options.question if ctx.options is not None else None,
                tag=options.tag,
                user_turns_over=options.user_turns_over if on else None,
            )
        except ContextError as exc:
            raise APIError(400, str(exc), param="thrifty.context") from None
        if not plan.pieces:
            return await self.next(ctx)
        if requested_key(ctx.request.headers.get(KEY_HEADER), options.key) == "original":
            ctx.cache_body = self._original_key(ctx.body, plan, options, ratio if on else None)
        saved = 0
        if on:
            saved = await anyio.to_thread.run_sync(self._compress, ctx, plan, options, ratio)
        elif any(p.message is None for p in plan.pieces):  # given documents go in as they are
            ctx.body = rewrite(ctx.body, plan, [p.text for p in plan.pieces], tag=options.tag)
        value = await self.next(ctx)
        if saved > 0 and ctx.route != "cache":
            self._credit(ctx, saved)
        return value

    def _original_key(
        self,
        body: dict[str, Any],
        plan: ContextPlan,
        options: CompressionOptions,
        ratio: float | None,
    ) -> dict[str, Any]:
        """The request as sent to the gateway, plus what decides its compressed prompt: the
        documents given in ``thrifty.context`` (the key leaves the ``thrifty`` field out) and
        the settings (None ratio: compression off, the documents placed whole)."""
        given = [[p.id, p.title, p.text] for p in plan.pieces if p.message is None]
        settings = {
            "documents": given,
            "ratio": ratio,
            "floor": options.floor,
            "min_tokens": options.min_tokens,
            "tag": options.tag,
            "user_turns_over": options.user_turns_over if ratio is not None else None,
            "question": plan.question,
            "embedder": self.settings.llmlingua2_model or self.settings.embedder,
        }
        return {**body, "thrifty_compression": settings}

    def _compress(
        self, ctx: RequestContext, plan: ContextPlan, options: CompressionOptions, ratio: float
    ) -> int:
        """Rewrites ``ctx.body`` with the context compressed; returns the tokens saved."""
        before = plan.tokens()
        if before < options.min_tokens:
            texts = [p.text for p in plan.pieces]
            after = before
        else:
            compressor = self.compressor()
            if compressor is None:  # the static table is being built: send the context whole
                ctx.body = rewrite(ctx.body, plan, [p.text for p in plan.pieces], tag=options.tag)
                ctx.headers["X-Thrifty-Compression"] = "warming"
                return 0
            docs = [{"id": p.id, "text": p.text, "title": p.title} for p in plan.pieces]
            result = compressor.compress(
                plan.question, docs, ratio=ratio, min_tokens=options.floor, model=ctx.model or ""
            )
            texts = [d.text for d in result.documents]
            before, after = result.tokens_before, result.tokens_after
        ctx.body = rewrite(ctx.body, plan, texts, tag=options.tag)
        ctx.headers["X-Thrifty-Compression"] = f"{before}->{after}"
        return before - after

    def _credit(self, ctx: RequestContext, saved_tokens: int) -> None:
        model = self.pricer.priced_model(ctx.answered_by or ctx.model or "")
        saved = self.pricer.cost(model, saved_tokens, 0)
        ctx.saved_usd += saved
        label = self.metrics.model_label(ctx.model)
        self.metrics.savings.labels(label, MECHANISM).inc(saved)
