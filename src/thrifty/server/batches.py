"""OpenAI's Files and Batches APIs on the gateway, run by the batch engine of ``thrifty batch``.

``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files/{id}`` and ``/content``,
``POST /v1/batches``, ``GET /v1/batches[/{id}]``, ``POST /v1/batches/{id}/cancel``: OpenAI SDK
batch code runs unchanged against the gateway. A batch runs in the worker that created it, through
the gateway's providers and cache store (namespaced by the caller's tenant), with the same
journal, deduplication and retries as the command line; files and batch records live on disk
under ``$THRIFTY_BATCH_DIR`` (default ``.thrifty/batches``), so every worker can answer for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from thrifty.batching.engine import BatchSettings, Outcome
from thrifty.batching.files import BatchStore, FileStore, public
from thrifty.batching.jobfile import ENDPOINTS, BatchRequest, parse_lines
from thrifty.batching.ledger_rows import line_mechanism, line_row
from thrifty.batching.runner import JobPaths, run_job
from thrifty.cache import Cache, CoalesceSettings
from thrifty.errors import JobFileError
from thrifty.policy import CacheMode, CachePolicy
from thrifty.server.auth import Principal
from thrifty.server.batch_upstreams import GatewayProviders, principal_for
from thrifty.server.bodies import json_response, read_form, read_json
from thrifty.server.errors import APIError
from thrifty.server.schemas import CreateBatchRequest, validate_body

log = logging.getLogger("thrifty.server.batches")
BATCH_DIR_ENV = "THRIFTY_BATCH_DIR"
DEFAULT_BATCH_DIR = ".thrifty/batches"
COMPLETION_WINDOWS = ("24h",)
#: Seconds between two writes of a running batch's counts.
PROGRESS_EVERY = 0.5
MAX_CONCURRENCY = 8
#: A create request names a file and a few options; its metadata is small.
CREATE_BODY_MAX_BYTES = 65_536


class BatchService:
    """Creates, runs and reports batches for one gateway worker."""

    def __init__(self, gateway: Any, root: str | Path) -> None:
        self.gateway = gateway
        self.files = FileStore(root)
        self.batches = BatchStore(root)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelling: set[str] = set()

    # ------------------------------------------------------------ batches
    def create(self, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        tenant = principal.tenant
        input_file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        window = body.get("completion_window", "24h")
        if not isinstance(input_file_id, str) or self.files.get(input_file_id, tenant) is None:
            raise APIError(404, f"no file with id {input_file_id!r}", param="input_file_id",
                           code="file_not_found")  # fmt: skip
        if endpoint not in ENDPOINTS:
            raise APIError(400, f"endpoint must be one of: {', '.join(ENDPOINTS)}",
                           param="endpoint", code="invalid_endpoint")  # fmt: skip
        if window not in COMPLETION_WINDOWS:
            raise APIError(400, "completion_window must be '24h'", param="completion_window",
                           code="invalid_completion_window")  # fmt: skip
        now = int(time.time())
        record: dict[str, Any] = {
            "id": f"batch_{uuid.uuid4().hex}",
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": input_file_id,
            "completion_window": window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 24 * 3600,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "tenant": tenant,
            "submitted_by": principal.key_id,
        }
        self.batches.save(record)
        lock = self.batches.lock(record["id"])
        if lock is not None:
            self._start(record, lock, resume=False)
        return record

    def _start(self, record: dict[str, Any], lock: int, *, resume: bool) -> None:
        batch_id = record["id"]
        task = asyncio.create_task(self._run(record, lock, resume=resume))
        self._tasks[batch_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(batch_id, None))

    def adopt_orphans(self) -> int:
        """Resume the batches nobody is running (the gateway restarted mid-batch); returns how
        many. Lines already done come from the journal, answers already paid from the cache."""
        adopted = 0
        for record in self.batches.unfinished():
            if record["id"] in self._tasks:
                continue
            lock = self.batches.lock(record["id"])
            if lock is None:
                continue  # another live worker runs it
            if record["status"] == "cancelling":
                self._cancelling.add(record["id"])
            log.info("resuming batch %s left %s", record["id"], record["status"])
            self._start(record, lock, resume=True)
            adopted += 1
        return adopted

    def cancel(self, record: dict[str, Any]) -> dict[str, Any]:
        if record["status"] in ("completed", "failed", "cancelled", "expired"):
            raise APIError(409, f"batch {record['id']} is already {record['status']}",
                           code="batch_not_cancellable")  # fmt: skip
        task = self._tasks.get(record["id"])
        if task is None:
            raise APIError(409, "the batch runs in another gateway worker; cancel it there",
                           code="batch_not_here")  # fmt: skip
        record.update(status="cancelling", cancelling_at=int(time.time()))
        self.batches.save(record)
        self._cancelling.add(record["id"])
        task.cancel()
        return record

    def _validate(self, record: dict[str, Any]) -> list[BatchRequest] | None:
        """The batch's requests, or None after marking it failed (errors per line)."""
        path = self.files.path(record["input_file_id"])
        try:
            requests = parse_lines(path.read_text(encoding="utf-8").splitlines(), path.name)
            problems = [
                (r.line, f"url {r.url} differs from the batch endpoint {record['endpoint']}")
                for r in requests
                if r.url != record["endpoint"]
            ]
        except JobFileError as exc:
            problems = [(p.line, p.message) for p in exc.problems]
        except (OSError, UnicodeDecodeError) as exc:
            problems = [(0, f"cannot read the input file: {exc}")]
        if not problems:
            return requests
        data = [
            {"code": "invalid_request", "message": m, "param": None, "line": line or None}
            for line, m in problems
        ]
        record.update(status="failed", failed_at=int(time.time()),
                      errors={"object": "list", "data": data})  # fmt: skip
        self.batches.save(record)
        return None

    def _settings(self, requests: list[BatchRequest], providers: GatewayProviders) -> BatchSettings:
        models = {r.body.get("model") for r in requests}
        rpm = tpm = None
        if len(models) == 1:
            rpm, tpm = providers.limits(str(models.pop()))
        cache = self.gateway.config.cache  # the gateway's own cache policy, for every line
        policy = CachePolicy(CacheMode.DEFAULT if cache.enabled else CacheMode.NO_CACHE,
                             cache_temperature=cache.cache_temperature)  # fmt: skip
        return BatchSettings(max_concurrency=MAX_CONCURRENCY, rpm=rpm, tpm=tpm, policy=policy)

    async def _run(self, record: dict[str, Any], lock: int, *, resume: bool) -> None:
        try:
            await self._run_locked(record, resume=resume)
        finally:
            os.close(lock)

    async def _run_locked(self, record: dict[str, Any], *, resume: bool) -> None:
        requests = await asyncio.to_thread(self._validate, record)  # a big file: off the loop
        if requests is None:
            return
        counts = record["request_counts"]
        counts.update(total=len(requests), completed=0, failed=0)  # a resume recounts
        if record["status"] == "validating":
            record.update(status="in_progress", in_progress_at=int(time.time()))
        # the output files' ids are chosen once, so a resumed batch writes the same files
        output_id = record.setdefault("output_path_id", self.files.new_id())
        error_id = record.setdefault("error_path_id", self.files.new_id())
        self.batches.save(record)
        paths = JobPaths(
            self.files.path(output_id),
            self.files.path(error_id),
            self.batches.journal_path(record["id"]),
        )
        cache = Cache(
            self.gateway.cache.store,
            namespace=record["tenant"],
            prices=self.gateway.prices,
            coalesce=CoalesceSettings(holder=f"batch-{record['id']}"),
        )
        principal = principal_for(self.gateway, record["tenant"], record.get("submitted_by", ""))
        providers = GatewayProviders(self.gateway, principal)
        last_save = [time.monotonic()]

        def on_outcome(outcome: Outcome) -> None:
            counts["completed" if outcome.ok else "failed"] += 1
            self._record(record, principal, outcome)
            if time.monotonic() - last_save[0] > PROGRESS_EVERY:
                last_save[0] = time.monotonic()
                self.batches.save(record)

        if record["id"] in self._cancelling:  # cancelled before a restart: finish that
            self._cancelling.discard(record["id"])
            self._finish(record, paths, output_id, error_id, "cancelled", requests)
            return
        try:
            await run_job(requests, paths, resolve=providers, cache=cache,
                          settings=self._settings(requests, providers), on_outcome=on_outcome,
                          resume=resume)  # fmt: skip
        except asyncio.CancelledError:
            if record["id"] in self._cancelling:  # the user's cancel, not a shutdown
                self._cancelling.discard(record["id"])
                self._finish(record, paths, output_id, error_id, "cancelled", requests)
            else:  # shutdown: keep it unfinished, so the next start resumes it
                self.batches.save(record)
            raise
        except Exception as exc:  # a bug or a full disk: the batch fails, the gateway lives
            log.exception("batch %s failed", record["id"])
            error = {"code": "batch_failed", "message": str(exc), "param": None, "line": None}
            record.update(status="failed", failed_at=int(time.time()),
                          errors={"object": "list", "data": [error]})  # fmt: skip
            self.batches.save(record)
        else:
            self._finish(record, paths, output_id, error_id, "completed", requests)
        finally:
            cache.flush()

    def _record(self, record: dict[str, Any], principal: Principal, outcome: Outcome) -> None:
        """Spend, tokens and savings of a line answered in this run into ``/metrics``, and its
        ledger row (a failed line or one done in an earlier run has neither): like a gateway
        request's, with a line billed at Batch API rates as ``batch_discount``."""
        mechanism = line_mechanism(outcome)
        if mechanism is None:
            return
        metrics = self.gateway.metrics
        label = metrics.model_label(outcome.model)
        metrics.tokens.labels(label, "in").inc(outcome.tokens_in)
        metrics.tokens.labels(label, "out").inc(outcome.tokens_out)
        metrics.spend.labels(label).inc(outcome.cost_usd)
        if outcome.saved_usd > 0:
            metrics.savings.labels(label, str(mechanism)).inc(outcome.saved_usd)
        ledger = self.gateway.ledger
        row = line_row(
            outcome,
            request_id=f"{record['id']}-{outcome.custom_id}",
            tenant=record["tenant"],
            key_id=principal.key_id,
        )
        if ledger is not None and row is not None:
            ledger.record(row)

    def _finish(self, record, paths, output_id, error_id, status, requests) -> None:
        """Register the output files and the final state (a cancelled batch keeps its partial
        results, as OpenAI's does)."""
        from thrifty.batching.journal import Journal
        from thrifty.batching.runner import export

        if status == "cancelled":  # run_job did not get to write its files
            with contextlib.closing(Journal(paths.journal)) as journal:
                export(requests, journal, paths)
        tenant = record["tenant"]
        if paths.output.exists():
            self.files.register(output_id, filename=f"{record['id']}_output.jsonl",
                                purpose="batch_output", tenant=tenant)  # fmt: skip
            record["output_file_id"] = output_id
        if paths.errors.exists():
            self.files.register(error_id, filename=f"{record['id']}_error.jsonl",
                                purpose="batch_output", tenant=tenant)  # fmt: skip
            record["error_file_id"] = error_id
        now = int(time.time())
        record.update(status=status, finalizing_at=now)
        record["completed_at" if status == "completed" else "cancelled_at"] = now
        self.batches.save(record)

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(BaseException):
                await task


def _batch_root() -> Path:
    return Path(os.environ.get(BATCH_DIR_ENV) or DEFAULT_BATCH_DIR)


def _open_service(app: Any) -> BatchService:
    """The worker's batch service; made (resuming unfinished batches) the first time."""
    if getattr(app.state, "batches", None) is None:
        app.state.batches = BatchService(app.state.gateway, _batch_root())
        app.state.batches.adopt_orphans()
    return app.state.batches


def service(request: Request) -> BatchService:
    """The worker's batch service, made on first use."""
    return _open_service(request.app)


def start_batches(app: Any) -> None:
    """At startup: resume the batches a previous run left unfinished (if there ever were any;
    a gateway that never ran a batch creates no folder)."""
    if (_batch_root() / "batches").is_dir():
        _open_service(app)


def _principal(request: Request) -> Principal:
    return request.app.state.gateway.keys.authenticate(request.headers)


def _tenant(request: Request) -> str:
    return _principal(request).tenant


def _handled(handler):
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except APIError as exc:
            return exc.response()

    return run


# -------------------------------------------------------------------- routes
async def create_file(request: Request) -> Response:
    tenant = _tenant(request)
    limit = request.app.state.gateway.config.server.max_upload_bytes
    form = await read_form(request, limit)  # 413 past the limit, 400 for a malformed form
    purpose, upload = form.get("purpose"), form.get("file")
    if purpose != "batch":
        raise APIError(400, "purpose must be 'batch' (the only purpose this gateway stores)",
                       param="purpose", code="invalid_purpose")  # fmt: skip
    if upload is None or isinstance(upload, str):
        raise APIError(400, "the form has no 'file' part", param="file", code="missing_file")
    data = await upload.read()
    record = await asyncio.to_thread(
        service(request).files.create,
        data,
        filename=upload.filename or "upload.jsonl",
        purpose="batch",
        tenant=tenant,
    )
    return json_response(public(record))


def _file_or_404(request: Request) -> dict[str, Any]:
    file_id = request.path_params["file_id"]
    record = service(request).files.get(file_id, _tenant(request))
    if record is None:
        raise APIError(404, f"no file with id {file_id!r}", code="file_not_found")
    return record


async def retrieve_file(request: Request) -> Response:
    return json_response(public(_file_or_404(request)))


async def file_content(request: Request) -> Response:
    record = _file_or_404(request)
    return FileResponse(service(request).files.path(record["id"]),
                        media_type="application/jsonl")  # fmt: skip


async def create_batch(request: Request) -> Response:
    principal = _principal(request)
    body = await read_json(request, CREATE_BODY_MAX_BYTES)
    validate_body(CreateBatchRequest, body)  # the schema /openapi.json documents
    return json_response(public(service(request).create(principal, body)))


def _batch_or_404(request: Request) -> dict[str, Any]:
    batch_id = request.path_params["batch_id"]
    record = service(request).batches.get(batch_id, _tenant(request))
    if record is None:
        raise APIError(404, f"no batch with id {batch_id!r}", code="batch_not_found")
    return record


async def retrieve_batch(request: Request) -> Response:
    return json_response(public(_batch_or_404(request)))


async def cancel_batch(request: Request) -> Response:
    return json_response(public(service(request).cancel(_batch_or_404(request))))


async def list_batches(request: Request) -> Response:
    records = service(request).batches.list(_tenant(request))
    after = request.query_params.get("after")
    if after:
        ids = [r["id"] for r in records]
        records = records[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = min(max(int(request.query_params.get("limit", "20")), 1), 100)
    except ValueError:
        raise APIError(400, "limit must be an integer", param="limit") from None
    page = [public(r) for r in records[:limit]]
    return json_response({
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(records) > limit,
    })  # fmt: skip


_ROUTES = [
    Route("/v1/files", _handled(create_file), methods=["POST"]),
    Route("/v1/files/{file_id}", _handled(retrieve_file), methods=["GET"]),
    Route("/v1/files/{file_id}/content", _handled(file_content), methods=["GET"]),
    Route("/v1/batches", _handled(create_batch), methods=["POST"]),
    Route("/v1/batches", _handled(list_batches), methods=["GET"]),
    Route("/v1/batches/{batch_id}", _handled(retrieve_batch), methods=["GET"]),
    Route("/v1/batches/{batch_id}/cancel", _handled(cancel_batch), methods=["POST"]),
]
#: The routes, also without the ``/v1`` prefix (as the gateway's model routes).
BATCH_ROUTES = _ROUTES + [
    Route(r.path.removeprefix("/v1"), r.endpoint, methods=r.methods) for r in _ROUTES
]


async def close_batches(app: Any) -> None:
    """Cancel this worker's running batches at shutdown (they keep their partial results)."""
    batches = getattr(app.state, "batches", None)
    if batches is not None:
        await batches.aclose()
