"""A message channel beside a shared store: Redis pub/sub, or PostgreSQL LISTEN/NOTIFY.

Why a channel: replicas share the entries through the store, but each keeps in-process copies
of them (the semantic index's vectors and question texts, threshold state, built values). When
one replica deletes or invalidates entries, the others learn it from one message on the store's
own server, at once, instead of when a lookup happens to meet a dead entry.

Pub/sub delivers at most once: a message sent while a listener is disconnected is lost. So
:meth:`Bus.listen` tells its caller when the subscription was (re)made after a loss
(``resync``): whatever was missed meanwhile, the caller drops its local copies and rebuilds them
from the store. A listener notices a cut connection at once (the socket closes) and a silent one
within ``HEALTH_SECONDS`` (a ping that gets no answer).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("thrifty.store.bus")
#: Seconds between pings on an idle subscription (a silently dead one is noticed by then).
HEALTH_SECONDS = 5.0
#: Seconds between attempts to subscribe again after the connection was lost.
RETRY_SECONDS = 0.5
#: Seconds one wait for a message may block (how quickly ``stop`` is noticed).
POLL_SECONDS = 0.5


class Bus(ABC):
    """One channel: :meth:`publish` from any thread, :meth:`listen` on one thread of its own."""

    channel: str

    @abstractmethod
    def publish(self, payload: str) -> None:
        """Send ``payload`` to every listener (raises the backend's error when it cannot)."""

    def listen(
        self,
        deliver: Callable[[str], None],
        resync: Callable[[], None],
        stop: threading.Event,
        subscribed: threading.Event | None = None,
    ) -> None:
        """Deliver messages until ``stop`` is set; call ``resync`` after every subscription
        that follows a lost one (messages may have been missed in between). ``subscribed`` is
        set while a subscription is live."""
        live = subscribed or threading.Event()
        lost = False
        while not stop.is_set():
            try:
                with self._subscription() as receive:
                    live.set()
                    if lost:
                        resync()
                    while not stop.is_set():
                        for payload in receive():
                            deliver(payload)
            except Exception as exc:  # any failure of the connection: subscribe again
                if not stop.is_set() and (live.is_set() or not lost):  # once per outage
                    log.warning("lost the %s subscription: %s", self.channel, exc)
            live.clear()
            lost = True
            stop.wait(RETRY_SECONDS)

    @abstractmethod
    def _subscription(self) -> Any:
        """A context manager: subscribe, yield a function that returns (or yields as they
        arrive) the payloads of the next ``POLL_SECONDS``, raising when the connection is gone;
        unsubscribe."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the publishing connection."""


class RedisBus(Bus):
    """A Redis pub/sub channel (``PUBLISH`` / ``SUBSCRIBE``) on the store's server."""

    def __init__(self, client_url: str, channel: str, timeout: float) -> None:
        import redis

        self.channel = channel
        self._url = client_url
        self._timeout = timeout
        self._publisher = redis.Redis.from_url(
            client_url, socket_connect_timeout=timeout, socket_timeout=timeout
        )

    def publish(self, payload: str) -> None:
        self._publisher.publish(self.channel, payload)

    def _subscription(self) -> Any:
        import contextlib

        import redis

        @contextlib.contextmanager
        def subscription() -> Any:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # No silent reconnection inside redis-py: a lost connection must reach listen(),
            # which resyncs. Reads wait POLL_SECONDS; pings find a silent server.
            client = redis.Redis.from_url(
                self._url,
                socket_connect_timeout=self._timeout,
                socket_timeout=HEALTH_SECONDS,
                health_check_interval=HEALTH_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                # wait for the confirmation: only from then on can no message be missed
                for _ in range(int(HEALTH_SECONDS / POLL_SECONDS)):
                    confirmation = pubsub.get_message(timeout=POLL_SECONDS)
                    if confirmation is not None and confirmation.get("type") == "subscribe":
                        break
                else:
                    raise ConnectionError(f"no confirmation of SUBSCRIBE {self.channel}")

                def receive() -> list[str]:
                    message = pubsub.get_message(timeout=POLL_SECONDS)
                    if message is None or message.get("type") != "message":
                        return []
                    data = message["data"]
                    return [data.decode() if isinstance(data, bytes) else str(data)]

                yield receive
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()
                with contextlib.suppress(Exception):
                    client.close()

        return subscription()

    def close(self) -> None:
        self._publisher.close()


class PostgresBus(Bus):
    """A PostgreSQL channel (``NOTIFY`` / ``LISTEN``) in the store's database."""

    def __init__(self, conninfo: str, channel: str, connect_timeout: float) -> None:
        self.channel = channel
        self._conninfo = conninfo
        self._connect_timeout = max(2, round(connect_timeout))  # libpq: whole seconds, >= 2
        self._lock = threading.Lock()
        self._publisher: Any = None

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
        )

    def publish(self, payload: str) -> None:
        with self._lock:
            for attempt in (1, 2):  # a pooled connection may have died with a restart
                if self._publisher is None or self._publisher.closed:
                    self._publisher = self._connect()
                try:
                    self._publisher.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
                    return
                except Exception:
                    self._publisher.close()
                    self._publisher = None
                    if attempt == 2:
                        raise

    def _subscription(self) -> Any:
        import contextlib

        from psycopg import sql

        @contextlib.contextmanager
        def subscription() -> Any:
            conn = self._connect()
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                idle = [0.0]

                def receive() -> Iterator[str]:
                    got = False
                    for notice in conn.notifies(timeout=POLL_SECONDS):  # each as it arrives
                        got = True
                        yield notice.payload
                    idle[0] = 0.0 if got else idle[0] + POLL_SECONDS
                    if idle[0] >= HEALTH_SECONDS:  # a silent server: ask it something
                        conn.execute("SELECT 1")
                        idle[0] = 0.0
                    if conn.closed:
                        raise ConnectionError("the LISTEN connection closed")

                yield receive
            finally:
                with contextlib.suppress(Exception):
                    conn.close()

        return subscription()

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None


__all__ = ["Bus", "PostgresBus", "RedisBus"]
