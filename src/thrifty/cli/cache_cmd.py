"""``thrifty cache``: invalidate entries, purge a user's data, clear a cache, rotate its key.

Every command here is an admin action: each leaves a record in the cache's audit log
(``thrifty audit``). With ``--config`` (or ``THRIFTY_CONFIG``) the cache URL and encryption keys
are the gateway's, so a purge finds entries whose user ids are hashed under those keys.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from thrifty.audit import AuditAction, AuditResult, subject
from thrifty.cli._admin import CacheURL, ConfigFile, audit, cache_settings, open_cache
from thrifty.cli._common import EXIT_FAILED, EXIT_USAGE, exit_codes, fail

cache_app = typer.Typer(
    help="Manage cached entries: invalidate by field, delete by key, purge a user, clear "
    "everything, re-encrypt under a new key.",
    no_args_is_help=True,
)


@cache_app.command(epilog="Example: thrifty cache invalidate --tag doc:42 --namespace support")
def invalidate(
    cache: CacheURL = None,
    config: ConfigFile = None,
    tag: Annotated[str | None, typer.Option(help="Entries carrying this tag.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Entries of this namespace.")] = None,
    model: Annotated[str | None, typer.Option(help="Entries produced by this model.")] = None,
    model_version: Annotated[
        str | None, typer.Option(help="Entries of this model version.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Entries produced for this user.")] = None,
) -> None:
    """Remove every entry matching ALL the given fields (at least one is required)."""
    if all(v is None for v in (tag, namespace, model, model_version, user)):
        fail(
            "give at least one of --tag, --namespace, --model, --model-version, --user "
            "(use 'thrifty cache clear' to drop everything)",
            EXIT_USAGE,
        )
    fields = {"tag": tag, "namespace": namespace, "model": model, "model_version": model_version}
    target = {k: v for k, v in fields.items() if v is not None}
    if user is not None:
        target["user"] = subject(user)
    with exit_codes(), open_cache(cache, config) as store:
        removed = store.invalidate(**fields, user_id=user)
        audit(store.url, AuditAction.INVALIDATE, target, removed=removed)
    typer.echo(f"removed {removed} entries")


@cache_app.command(epilog="Example: thrifty cache delete 3f9a… (the X-Thrifty-Cache-Key header)")
def delete(
    key: Annotated[str, typer.Argument(help="The entry's cache key.")],
    cache: CacheURL = None,
    config: ConfigFile = None,
) -> None:
    """Delete one entry by its key (what a gateway response reports in X-Thrifty-Cache-Key)."""
    with exit_codes(), open_cache(cache, config) as store:
        removed = store.delete(key)
        audit(store.url, AuditAction.DELETE, {"key": key}, AuditResult.OK, removed=int(removed))
    typer.echo(f"removed {int(removed)} entries")


@cache_app.command("purge-user", epilog="Example: thrifty cache purge-user u-1234 --config gw.yaml")
def purge_user(
    user_id: Annotated[str, typer.Argument(help="The end user's id.")],
    cache: CacheURL = None,
    config: ConfigFile = None,
) -> None:
    """Delete every entry produced for one user, in every namespace, and erase the deleted
    bytes from the backend's files (SQLite free pages and WAL, PostgreSQL dead rows)."""
    from thrifty.safety.purge import purge_user as purge

    with exit_codes(), open_cache(cache, config) as store:
        report = purge(store, user_id)
        result = AuditResult.OK if report.error is None else AuditResult.ERROR
        audit(store.url, AuditAction.PURGE_USER, {"user": subject(user_id)}, result,
              **report.to_dict())  # fmt: skip
    erased = "erased from disk" if report.scrubbed else f"NOT erased from disk: {report.error}"
    typer.echo(f"purged {report.entries} entries of user {user_id!r} ({erased})")
    if report.error is not None:
        raise typer.Exit(EXIT_FAILED)


@cache_app.command(epilog="Example: thrifty cache clear --cache sqlite:///.thrifty/demo.db --yes")
def clear(
    cache: CacheURL = None,
    config: ConfigFile = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every entry and counter of a cache (its audit log stays)."""
    url, _ = cache_settings(cache, config)
    if not yes:
        typer.confirm(f"Remove every entry and counter in {url}?", abort=True)
    with exit_codes(), open_cache(cache, config) as store:
        store.clear()
        audit(store.url, AuditAction.CLEAR, {})
    typer.echo(f"cleared {url}")


@cache_app.command(
    "rotate-key",
    epilog="Example: thrifty cache rotate-key --config gw.yaml   (after moving the old key to "
    "cache.old_encryption_keys and setting a new cache.encryption_key)",
)
def rotate_key(cache: CacheURL = None, config: ConfigFile = None) -> None:
    """Re-encrypt every entry sealed by an old key (or not sealed at all) with the config's
    current ``cache.encryption_key``; old keys stay needed only for what this could not open."""
    from thrifty.safety.crypto import Keyring
    from thrifty.safety.rotate import count_keys, reseal
    from thrifty.store import open_store

    with exit_codes():
        url, protect = cache_settings(cache, config)
        if not protect.encryption_key:
            fail("rotate-key needs cache.encryption_key in the --config file", EXIT_USAGE)
        keyring = Keyring.from_config(protect.encryption_key, protect.old_keys)
        store = open_store(url)
        try:
            total = count_keys(store)
            with Progress(console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task(
                    f"re-encrypting under key {keyring.current_id}", total=total
                )
                report = reseal(store, keyring, progress=lambda n: progress.advance(task, n))
        except NotImplementedError as exc:
            fail(str(exc), EXIT_USAGE)
        finally:
            store.close()
        target = {"key_id": keyring.current_id, "old_key_ids": list(keyring.key_ids[1:])}
        result = AuditResult.OK if report.failed == 0 else AuditResult.ERROR
        audit(url, AuditAction.ROTATE_KEY, target, result, **report.to_dict())
    typer.echo(
        f"re-encrypted {report.resealed} of {report.scanned} entries under key "
        f"{keyring.current_id}; {report.failed} could not be opened"
    )
    if report.failed:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
