"""A psycopg connection whose every wait for the server has a client-side deadline.

PostgreSQL's ``statement_timeout`` is enforced by the server, so a server that cannot answer at
all (a frozen process, an I/O stall, a proxy that swallows traffic, while its kernel still
acknowledges packets) would hold the calling thread forever. This connection gives up after
``wait_timeout`` seconds, closes itself (its protocol state is unknown, so the pool discards it)
and raises :class:`psycopg.OperationalError`, one of the store's outage errors.

Imported only by :class:`~thrifty.store.postgres.PostgresStore`, after psycopg is known to be
installed. It relies on ``Connection.wait``'s ``timeout`` (psycopg 3.2 and later); with an older
psycopg the store keeps the plain connection class.
"""

from __future__ import annotations

import inspect
from typing import Any

import psycopg
from psycopg import errors

#: True when this psycopg's ``Connection.wait`` takes a deadline.
SUPPORTED = "timeout" in inspect.signature(psycopg.Connection.wait).parameters
_WaitTimeout: type[BaseException] = getattr(errors, "_WaitTimeout", TimeoutError)


class BoundedConnection(psycopg.Connection[Any]):
    """A :class:`psycopg.Connection` whose waits end after :attr:`wait_timeout` seconds."""

    #: Seconds any one round trip may take (None: no deadline). The store sets it on each
    #: pooled connection: short for the hot path, longer inside bulk work.
    wait_timeout: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        deadline = timeout if timeout is not None else self.wait_timeout
        try:
            return super().wait(gen, interval, deadline)
        except _WaitTimeout as exc:
            # The reply may still come, mid-protocol: this connection cannot be reused.
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"no answer from the server within {deadline:.2f}s (client-side timeout)"
            ) from exc


__all__ = ["SUPPORTED", "BoundedConnection"]
