"""The OpenAI Batch file format: input lines in, output and error lines out.

An input line is ``{"custom_id", "method", "url", "body"}``. The whole file is checked before
anything is sent (as OpenAI does), and every bad line is reported with its number, so a user
fixes the file once instead of once per run.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.errors import JobFileError, LineProblem
from thrifty.json_limits import MAX_JSON_DEPTH, json_depth

#: Endpoint URL -> the Provider method that answers it (declared once, as data).
ENDPOINTS: Mapping[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completion",
    "/v1/embeddings": "embeddings",
}
#: Fields a body must carry per endpoint.
REQUIRED_BODY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "/v1/chat/completions": ("model", "messages"),
    "/v1/completions": ("model", "prompt"),
    "/v1/embeddings": ("model", "input"),
}
MAX_CUSTOM_ID = 512
#: More problems than this are summarised rather than listed.
MAX_PROBLEMS = 50


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One validated input line."""

    custom_id: str
    method: str
    url: str
    body: dict[str, Any]
    #: 1-based line number in the input file.
    line: int

    @property
    def endpoint(self) -> str:
        """The Provider method name: ``chat``, ``completion`` or ``embeddings``."""
        return ENDPOINTS[self.url]


def _check_line(obj: Any) -> str | None:
    """What is wrong with one decoded line, or None."""
    if not isinstance(obj, dict):
        return "a line must be a JSON object"
    missing = [f for f in ("custom_id", "method", "url", "body") if f not in obj]
    if missing:
        return "missing field(s): " + ", ".join(missing)
    custom_id = obj["custom_id"]
    if not isinstance(custom_id, str) or not custom_id.strip():
        return "custom_id must be a non-empty string"
    if len(custom_id) > MAX_CUSTOM_ID:
        return f"custom_id is longer than {MAX_CUSTOM_ID} characters"
    if obj["method"] != "POST":
        return f"method must be 'POST', got {obj['method']!r}"
    url = obj["url"]
    if url not in ENDPOINTS:
        return f"url {url!r} is not supported; use one of: " + ", ".join(ENDPOINTS)
    body = obj["body"]
    if not isinstance(body, dict):
        return "body must be a JSON object"
    missing = [f for f in REQUIRED_BODY_FIELDS[url] if f not in body]
    if missing:
        return f"body for {url} is missing: " + ", ".join(missing)
    if not isinstance(body["model"], str) or not body["model"]:
        return "body.model must be a non-empty string"
    if url == "/v1/chat/completions" and (
        not isinstance(body["messages"], list) or not body["messages"]
    ):
        return "body.messages must be a non-empty list"
    if body.get("stream"):
        return "body.stream must be false or absent in a batch"
    return None


TOO_DEEP = object()


def parse_lines(lines: Iterable[str], source: str = "<input>") -> list[BatchRequest]:
    """Validate and parse batch input lines (blank lines are skipped).

    Raises:
        JobFileError: one or more lines are invalid; ``.problems`` lists each with its number.
    """
    requests: list[BatchRequest] = []
    problems: list[LineProblem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            problems.append(LineProblem(number, f"not valid JSON: {exc}"))
            continue
        except RecursionError:
            obj = TOO_DEEP  # nested past Python's own limit: refused just below
        if obj is TOO_DEEP or json_depth(obj, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            problems.append(LineProblem(number, f"nests deeper than {MAX_JSON_DEPTH} levels"))
            continue
        problem = _check_line(obj)
        if problem is None and obj["custom_id"] in seen:
            first = seen[obj["custom_id"]]
            problem = f"duplicate custom_id {obj['custom_id']!r} (first on line {first})"
        if problem is not None:
            problems.append(LineProblem(number, problem))
            continue
        seen[obj["custom_id"]] = number
        requests.append(BatchRequest(obj["custom_id"], "POST", obj["url"], obj["body"], number))
    if problems:
        raise JobFileError(source, problems)
    if not requests:
        raise JobFileError(source, [LineProblem(0, "the file has no requests")])
    return requests


def read_jobfile(path: str | Path) -> list[BatchRequest]:
    """Read and validate a batch input file.

    Raises:
        JobFileError: the file is missing, unreadable or has invalid lines.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JobFileError(str(path), [LineProblem(0, f"cannot read the file: {exc}")]) from exc
    return parse_lines(text.splitlines(), str(path))


def _hex128() -> str:
    # Unique ids, not secrets: the PRNG is far cheaper than os.urandom per line (uuid4).
    return f"{random.getrandbits(128):032x}"


def new_request_id() -> str:
    return f"batch_req_{_hex128()}"


def output_line(
    custom_id: str,
    *,
    status_code: int | None,
    body: Any,
    error: Mapping[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """One line of OpenAI's batch output (``error`` None) or error file (``error`` set)."""
    response = None
    if status_code is not None:
        response = {
            "status_code": status_code,
            "request_id": request_id or f"req_{_hex128()}",
            "body": body,
        }
    return {
        "id": new_request_id(),
        "custom_id": custom_id,
        "response": response,
        "error": None if error is None else dict(error),
    }


def write_lines(path: str | Path, lines: Iterable[Mapping[str, Any]]) -> int:
    """Write JSON lines atomically (temp file + rename); returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    tmp.replace(path)
    return count
