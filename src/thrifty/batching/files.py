"""Uploaded files and batch records on disk, in the shapes of OpenAI's Files and Batches APIs.

A file is ``files/<id>.jsonl`` plus ``files/<id>.json`` (its metadata, with the owning tenant);
a batch is ``batches/<id>.json``, rewritten atomically on every change, so any gateway worker on
the same disk reads the current state, and ``batches/<id>.journal.db`` is its progress journal.
"""

from __future__ import annotations

import builtins
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

#: Fields kept in the records but never shown to clients.
PRIVATE_FIELDS = ("tenant", "submitted_by", "output_path_id", "error_path_id")
#: Batch states in which a worker should be running the batch.
UNFINISHED = ("validating", "in_progress", "cancelling")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False))
    os.replace(tmp, path)


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the API shows it."""
    return {k: v for k, v in record.items() if k not in PRIVATE_FIELDS}


class FileStore:
    """Files uploaded for batches and the output files batches produce."""

    def __init__(self, root: str | Path) -> None:
        self.dir = Path(root) / "files"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, file_id: str) -> Path:
        return self.dir / f"{file_id}.jsonl"

    def create(self, data: bytes, *, filename: str, purpose: str, tenant: str) -> dict[str, Any]:
        file_id = f"file-{uuid.uuid4().hex}"
        self.path(file_id).write_bytes(data)
        return self.register(file_id, filename=filename, purpose=purpose, tenant=tenant)

    def register(self, file_id: str, *, filename: str, purpose: str, tenant: str) -> dict:
        """Record the metadata of a file already written at :meth:`path`."""
        record = {
            "id": file_id,
            "object": "file",
            "bytes": self.path(file_id).stat().st_size,
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
            "tenant": tenant,
        }
        _write_json(self.dir / f"{file_id}.json", record)
        return record

    def get(self, file_id: str, tenant: str) -> dict[str, Any] | None:
        """The file's metadata, or None when missing or owned by another tenant."""
        if not file_id.startswith("file-") or "/" in file_id:
            return None
        try:
            record = json.loads((self.dir / f"{file_id}.json").read_text())
        except (OSError, ValueError):
            return None
        return record if record.get("tenant") == tenant else None

    def new_id(self) -> str:
        return f"file-{uuid.uuid4().hex}"


class BatchStore:
    """Batch records (OpenAI's ``batch`` object plus the owner)."""

    def __init__(self, root: str | Path) -> None:
        self.dir = Path(root) / "batches"
        self.dir.mkdir(parents=True, exist_ok=True)

    def journal_path(self, batch_id: str) -> Path:
        return self.dir / f"{batch_id}.journal.db"

    def save(self, record: dict[str, Any]) -> None:
        _write_json(self.dir / f"{record['id']}.json", record)

    def get(self, batch_id: str, tenant: str) -> dict[str, Any] | None:
        if not batch_id.startswith("batch_") or "/" in batch_id:
            return None
        try:
            record = json.loads((self.dir / f"{batch_id}.json").read_text())
        except (OSError, ValueError):
            return None
        return record if record.get("tenant") == tenant else None

    def lock(self, batch_id: str) -> int | None:
        """Take the batch's run lock (an open file descriptor; close it to release), or None
        when a live process holds it. The kernel drops the lock of a process that dies, so a
        batch whose lock can be taken has nobody running it."""
        import fcntl

        fd = os.open(self.dir / f"{batch_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    def _all(self) -> list[dict[str, Any]]:
        records = []
        for path in self.dir.glob("batch_*.json"):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return records

    def list(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's batches, newest first."""
        records = [r for r in self._all() if r.get("tenant") == tenant]
        return sorted(records, key=lambda r: (r.get("created_at", 0), r["id"]), reverse=True)

    def unfinished(self) -> builtins.list[dict[str, Any]]:  # ``list`` is the method above
        """Every tenant's batches that should be running."""
        return [r for r in self._all() if r.get("status") in UNFINISHED]
