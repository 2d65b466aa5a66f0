"""``thrifty cache``: invalidate entries, purge a user's data, clear a cache."""

from __future__ import annotations

from typing import Annotated

import typer

from thrifty.cache import Cache
from thrifty.cli._common import EXIT_USAGE, exit_codes, fail
from thrifty.store import DEFAULT_URL

cache_app = typer.Typer(
    help="Manage cached entries: invalidate by field or key, purge a user, clear everything.",
    no_args_is_help=True,
)
CacheURL = Annotated[str, typer.Option("--cache", help="Cache URL.")]


@cache_app.command(epilog="Example: thrifty cache invalidate --tag doc:42 --namespace support")
def invalidate(
    cache: CacheURL = DEFAULT_URL,
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
    with exit_codes(), Cache(cache) as store:
        removed = store.invalidate(
            tag=tag, namespace=namespace, model=model, model_version=model_version, user_id=user
        )
    typer.echo(f"removed {removed} entries")


@cache_app.command(epilog="Example: thrifty cache delete 3f9a… (the X-Thrifty-Cache-Key header)")
def delete(
    key: Annotated[str, typer.Argument(help="The entry's cache key.")],
    cache: CacheURL = DEFAULT_URL,
) -> None:
    """Delete one entry by its key (what a gateway response reports in X-Thrifty-Cache-Key)."""
    with exit_codes(), Cache(cache) as store:
        removed = store.delete(key)
    typer.echo(f"removed {int(removed)} entries")


@cache_app.command("purge-user", epilog="Example: thrifty cache purge-user u-1234")
def purge_user(
    user_id: Annotated[str, typer.Argument(help="The end user's id.")],
    cache: CacheURL = DEFAULT_URL,
) -> None:
    """Delete every entry produced for one user, in every namespace."""
    with exit_codes(), Cache(cache) as store:
        removed = store.invalidate(user_id=user_id)
    typer.echo(f"purged {removed} entries of user {user_id!r}")


@cache_app.command(epilog="Example: thrifty cache clear --cache sqlite:///.thrifty/demo.db --yes")
def clear(
    cache: CacheURL = DEFAULT_URL,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every entry and counter of a cache."""
    if not yes:
        typer.confirm(f"Remove every entry and counter in {cache}?", abort=True)
    with exit_codes(), Cache(cache) as store:
        store.clear()
    typer.echo(f"cleared {cache}")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
