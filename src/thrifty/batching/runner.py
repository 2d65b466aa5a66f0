"""One batch job from input file to output files: what ``thrifty batch run`` and the gateway's
``/v1/batches`` both call.

Upstreams: without a config every model is answered by the embedded local model; with one, each
``model_list`` name by its first deployment (a batch needs no load balancing, and the engine does
its own retries and rate limiting, so it talks to providers directly, not through the gateway's
deployment pool).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.batching.engine import (
    BatchEngine,
    BatchSettings,
    BatchSummary,
    Outcome,
    ProviderResolver,
)
from thrifty.batching.jobfile import BatchRequest, write_lines
from thrifty.batching.journal import Journal
from thrifty.cache import Cache
from thrifty.errors import UnknownModelError
from thrifty.providers.base import Provider


@dataclass(frozen=True, slots=True)
class JobPaths:
    """Where a job's files live."""

    output: Path
    errors: Path
    journal: Path

    @classmethod
    def beside(
        cls, output: str | Path, errors: str | Path | None = None, journal: str | Path | None = None
    ) -> JobPaths:
        """Default errors and journal files next to the output file."""
        out = Path(output)
        return cls(
            out,
            Path(errors) if errors else out.with_name(out.stem + ".errors.jsonl"),
            Path(journal) if journal else out.with_name(out.name + ".journal.db"),
        )

    @property
    def lease_holder(self) -> str:
        """The job's name for cache leases: the same in every run of the job, so a resumed run
        re-takes the coalescing leases of the run that crashed instead of waiting them out."""
        digest = hashlib.sha256(str(self.journal.resolve()).encode()).hexdigest()
        return f"batch-{digest[:32]}"


class ProviderSet:
    """Providers by model name, built on first use and closed together.

    Args:
        factories: model name -> a function building its provider.
        default: the name serving models not in ``factories`` (None: they are unknown).
        priced_as: model name -> the name its price is looked up under (the upstream's model;
            None for a free local model).
    """

    def __init__(
        self,
        factories: dict[str, Callable[[], Provider]],
        default: str | None = None,
        priced_as: dict[str, str | None] | None = None,
    ) -> None:
        self._factories = factories
        self._default = default
        self._priced_as = priced_as or {}
        self._built: dict[str, Provider] = {}

    def price_name(self, model: str) -> str | None:
        """The model name whose price applies to ``model``'s answers."""
        name = model if model in self._factories else self._default
        return self._priced_as.get(name or model, model)

    def __call__(self, model: str) -> Provider:
        name = model if model in self._factories else self._default
        if name is None:
            raise UnknownModelError(model, sorted(self._factories))
        if name not in self._built:
            self._built[name] = self._factories[name]()
        return self._built[name]

    async def aclose(self) -> None:
        for provider in self._built.values():
            with contextlib.suppress(Exception):
                await provider.aclose()
        self._built.clear()


def local_providers(price_model: str | None = None) -> ProviderSet:
    """Every model answered by the embedded local model (no config given), its answers priced
    at ``price_model``'s rates (None: free)."""
    from thrifty.providers.local import local_provider

    return ProviderSet({"local": local_provider}, default="local", priced_as={"local": price_model})


def config_providers(config: Any, price_model: str | None = None) -> ProviderSet:
    """Each ``model_list`` name served by its first deployment in a gateway config; local
    deployments' answers priced at ``price_model``'s rates (None: free)."""
    from thrifty.server.config import provider_of

    factories: dict[str, Callable[[], Provider]] = {}
    priced_as: dict[str, str | None] = {}
    for entry in config.model_list:
        if entry.model_name in factories:
            continue
        params = entry.litellm_params
        factories[entry.model_name] = _factory(params, entry.model_name, provider_of)
        priced_as[entry.model_name] = (
            price_model if params.kind == "local" else provider_of(params.model)[1]
        )
    return ProviderSet(factories, priced_as=priced_as)


def _factory(params: Any, name: str, provider_of: Callable[[str], tuple[str, str]]):
    if params.kind == "local":

        def make_local() -> Provider:
            from thrifty.providers.local import local_provider

            return local_provider(params.model_path, model_name=name)

        return make_local

    def make_remote() -> Provider:
        from thrifty.providers.openai_compat import OpenAICompatProvider
        from thrifty.server.config import DEFAULT_OPENAI_BASE

        kwargs: dict[str, Any] = {"name": name}
        if params.timeout:
            kwargs["timeout"] = params.timeout
        return OpenAICompatProvider(
            params.api_base or DEFAULT_OPENAI_BASE,
            params.api_key,
            provider_of(params.model)[1],
            **kwargs,
        )

    return make_remote


def export(requests: Sequence[BatchRequest], journal: Journal, paths: JobPaths) -> tuple[int, int]:
    """Write the output and error files from the journal, in input order.

    The errors file is written only when some line failed. Returns (ok lines, error lines).
    """
    records = journal.records()
    ok = [records[r.custom_id].line for r in requests if r.custom_id in records and
          records[r.custom_id].ok]  # fmt: skip
    failed = [records[r.custom_id].line for r in requests if r.custom_id in records and
              not records[r.custom_id].ok]  # fmt: skip
    write_lines(paths.output, ok)
    if failed:
        write_lines(paths.errors, failed)
    else:
        with contextlib.suppress(FileNotFoundError):
            paths.errors.unlink()
    return len(ok), len(failed)


async def run_job(
    requests: Sequence[BatchRequest],
    paths: JobPaths,
    *,
    resolve: ProviderResolver,
    cache: Cache,
    settings: BatchSettings | None = None,
    resume: bool = False,
    on_outcome: Callable[[Outcome], Any] | None = None,
) -> BatchSummary:
    """Run (or resume) a job and write its output files; the journal stays for a later resume."""
    journal = Journal(paths.journal)
    try:
        engine = BatchEngine(resolve, cache, journal, settings, on_outcome=on_outcome)
        summary = await engine.run(requests, resume=resume)
        export(requests, journal, paths)
        return summary
    finally:
        journal.close()
