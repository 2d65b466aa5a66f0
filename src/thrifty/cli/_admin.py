"""What the admin subcommands (``thrifty cache …``, ``thrifty audit``) share: the cache they act
on, read from ``--cache`` or the gateway's ``--config`` (so a purge or a rotation sees the same
encryption keys as the gateway), and the audit record each action leaves."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any

import typer

from thrifty.audit import AuditAction, AuditRecord, AuditResult, open_audit
from thrifty.cache import Cache, ProtectSettings
from thrifty.store import DEFAULT_URL

CacheURL = Annotated[
    str | None,
    typer.Option("--cache", help="Cache URL (default: the config's cache.url, else the default)."),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="THRIFTY_CONFIG",
        help="The gateway's YAML config: its cache URL and encryption keys.",
    ),
]


def cache_settings(cache: str | None, config: Path | None) -> tuple[str, ProtectSettings]:
    """(cache URL, protection with the config's keys) for an admin command.

    Raises:
        ConfigError: the config file is unreadable or invalid.
    """
    if config is None:
        return cache or DEFAULT_URL, ProtectSettings()
    from thrifty.server.config import load_config

    settings = load_config(config).cache
    protect = ProtectSettings(
        encryption_key=settings.encryption_key, old_keys=tuple(settings.old_encryption_keys)
    )
    return cache or settings.url, protect


def open_cache(cache: str | None, config: Path | None) -> Cache:
    """The cache an admin command acts on (sealed with the config's keys, if any)."""
    url, protect = cache_settings(cache, config)
    return Cache(url, protect=protect)


def actor() -> str:
    """Who runs the command, as the audit log names them (the OS user; never a secret)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "cli:unknown"


def audit(
    url: str,
    action: AuditAction,
    target: dict[str, Any],
    result: AuditResult = AuditResult.OK,
    **detail: Any,
) -> None:
    """Append the command's record to the audit log that lives with the cache at ``url``."""
    log = open_audit(url)
    try:
        log.record(AuditRecord(action, actor(), target, result, detail))
    finally:
        log.close()
