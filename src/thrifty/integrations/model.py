"""``@thrifty.cached``: cache any model's inference (TensorFlow, PyTorch, ONNX, scikit-learn…).

The key is the model name and version plus every argument hashed by value (arrays by dtype,
shape and bytes; tensors through numpy; lists and dicts canonically), so the same input gives
the same key in every process. Entries carry ``model`` and ``model_version``: shipping a new
version and calling ``cache.invalidate(model=..., model_version=old)`` drops the old answers.

With ``per_row=True`` the first argument is a batch: each row is cached on its own, and the
function is called once with only the rows the cache lacks.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from thrifty.cache import Cache
from thrifty.errors import ConfigError
from thrifty.integrations import _tensors
from thrifty.integrations._flow import Flow, Step, call, run_async, run_sync
from thrifty.keys import KEY_VERSION

log = logging.getLogger("thrifty.model")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class ModelCache:
    """How one decorated function is cached (reachable as ``fn.thrifty``)."""

    model: str
    version: str | None
    cache: Cache | None
    per_row: bool = False
    namespace: str | None = None
    ttl: float | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    skip: int = 0
    """Leading arguments left out of the key: 1 for a method's ``self`` or ``cls``."""

    def get_cache(self) -> Cache:
        if self.cache is None:  # created on first use, not at import time
            self.cache = Cache()
        return self.cache

    def base_hasher(self, args: Iterable[Any], kwargs: dict[str, Any]) -> Any:
        ns = self.namespace or self.get_cache().namespace
        h = _tensors.new_hasher("model", KEY_VERSION, ns, self.model, self.version or "")
        _tensors.feed(h, list(args))
        _tensors.feed(h, kwargs)
        return h

    def key(self, *args: Any, **kwargs: Any) -> str:
        """The cache key of one call."""
        return self.base_hasher(args, kwargs).hexdigest()

    def row_keys(self, batch: Any, rest: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
        base = self.base_hasher(("per_row", *rest), kwargs)
        keys = []
        for row in _tensors.rows_of(batch):
            h = base.copy()
            _tensors.feed(h, row)
            keys.append(h.hexdigest())
        return keys

    def fields(self) -> dict[str, Any]:
        return {"model": self.model, "model_version": self.version, "tags": self.tags}

    def invalidate(self) -> int:
        """Drop every cached answer of this model version."""
        return self.get_cache().invalidate(model=self.model, model_version=self.version)


def _keys_or_none(compute_keys: Callable[[], Any]) -> Any:
    try:
        return compute_keys()
    except TypeError as exc:  # fail-open: an input we cannot hash runs uncached
        log.warning("thrifty cannot key this model input, running it uncached: %s", exc)
        return None


def _has_rows(body: tuple[Any, ...]) -> bool:
    """A non-empty batch to split (an empty or unsized one is passed through whole)."""
    try:
        return bool(body) and len(body[0]) > 0
    except TypeError:
        return False


def _method_skip(fn: Callable[..., Any]) -> int:
    """1 when ``fn`` is a method (first parameter ``self`` or ``cls``): not part of the key."""
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return 0
    return 1 if params and params[0] in ("self", "cls") else 0


def _group_missing(keys: list[str], found: list[Any]) -> dict[str, list[int]]:
    """Missing keys → the row positions that need them (duplicate rows computed once)."""
    missing: dict[str, list[int]] = {}
    for i, (key, record) in enumerate(zip(keys, found, strict=True)):
        if record is None:
            missing.setdefault(key, []).append(i)
    return missing


def _flow(
    fn: Callable[..., Any], spec: ModelCache, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Flow[Any]:
    """One call of a decorated function, for the sync and the async face alike."""
    head, body = args[: spec.skip], args[spec.skip :]
    if spec.per_row and _has_rows(body):
        return (yield from _rows_flow(fn, spec, head, body, kwargs))
    key = _keys_or_none(lambda: spec.key(*body, **kwargs))
    if key is None:
        return (yield call(fn, *args, **kwargs))
    fresh: list[Any] = []

    def compute() -> Flow[Any]:
        fresh.append((yield call(fn, *args, **kwargs)))
        return _tensors.pack(fresh[0])

    cache = spec.get_cache()
    options = {"namespace": spec.namespace, "ttl": spec.ttl, **spec.fields()}
    try:
        value, _ = yield Step(cache.get_or_compute, cache.aget_or_compute, (key,), options, compute)
    except TypeError as exc:
        if not fresh:
            raise
        log.warning("thrifty cannot store this model output: %s", exc)
        return fresh[0]
    return fresh[0] if fresh else _tensors.unpack(value)


def _rows_flow(
    fn: Callable[..., Any],
    spec: ModelCache,
    head: tuple[Any, ...],
    body: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Flow[Any]:
    """A batch call: each row looked up alone, the missing rows computed in one call."""
    batch, rest = body[0], body[1:]
    keys = _keys_or_none(lambda: spec.row_keys(batch, rest, kwargs))
    if keys is None:
        return (yield call(fn, *head, *body, **kwargs))
    cache = spec.get_cache()
    found: list[Any] = []
    for key in keys:
        hit = yield Step(cache.lookup, cache.alookup, (key,), {"namespace": spec.namespace})
        found.append(None if hit is None else hit.value)
    missing = _group_missing(keys, found)
    if missing:
        firsts = [positions[0] for positions in missing.values()]
        started = time.perf_counter()
        output = yield call(fn, *head, _tensors.take(batch, firsts), *rest, **kwargs)
        each_ms = (time.perf_counter() - started) * 1000 / len(firsts)
        options = {"namespace": spec.namespace, "ttl": spec.ttl, "latency_ms": each_ms,
                   **spec.fields()}  # fmt: skip
        for (key, positions), record in zip(
            missing.items(), _tensors.split_output(output, len(firsts)), strict=True
        ):
            for i in positions:
                found[i] = record
            try:
                yield Step(cache.set, cache.aset, (key, record), options)
            except TypeError as exc:
                log.warning("thrifty cannot store this model output row: %s", exc)
    return _tensors.assemble(found)


def _decorated(fn: Callable[..., Any], spec: ModelCache) -> Callable[..., Any]:
    """``fn`` with its calls run through :func:`_flow`, on the face ``fn`` has."""
    if inspect.iscoroutinefunction(fn):

        async def acall(*args: Any, **kwargs: Any) -> Any:
            return await run_async(_flow(fn, spec, args, kwargs))

        wrapper: Callable[..., Any] = acall
    else:

        def scall(*args: Any, **kwargs: Any) -> Any:
            return run_sync(_flow(fn, spec, args, kwargs))

        wrapper = scall
    functools.update_wrapper(wrapper, fn)
    wrapper.thrifty = spec  # type: ignore[attr-defined]
    return wrapper


def cached(
    *,
    model: str,
    version: str | None = None,
    cache: Cache | None = None,
    per_row: bool = False,
    namespace: str | None = None,
    ttl: float | None = None,
    tags: Iterable[str] = (),
) -> Callable[[F], F]:
    """Cache a model's inference function (sync or async) by model, version and input values.

    Args:
        model: the model's name, stored on every entry.
        version: the model's version; part of the key and stored, for invalidation.
        cache: the :class:`thrifty.Cache` (default: ``thrifty.Cache()`` on first call).
        per_row: the first argument is a batch (array, tensor, DataFrame or list); cache each
            row alone and call the function only with the rows the cache lacks. The function
            must return one output row per input row.
        namespace, ttl, tags: as for :meth:`thrifty.Cache.set`.

    The decorated function keeps its signature and gains ``fn.thrifty`` (key(), invalidate()).
    On a method, ``self`` (or ``cls``) is left out of the key and the batch is the next argument.

    Raises:
        ConfigError: no model name.
    """
    if not model or not isinstance(model, str):
        raise ConfigError("cached() needs model='name' (a non-empty string)")
    spec = ModelCache(model, version, cache, per_row, namespace, ttl, tuple(tags))

    def decorate(fn: F) -> F:
        bound = dataclasses.replace(spec, skip=_method_skip(fn))
        return _decorated(fn, bound)  # type: ignore[return-value]

    return decorate
