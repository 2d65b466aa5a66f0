"""Deletes, invalidations and clears reach every replica's in-process layers at once.

Replicas share entries through the store, but each keeps copies of them in its own memory: the
semantic index (vectors and question texts; the whole index when it is in-process), per-entry
threshold state, built values. A lookup never serves a dead entry from those copies (every
candidate is re-read from the store first), but without a message they linger: a purged
user's questions would stay in every other replica's index and index file until a lookup met
them. So each :class:`~thrifty.cache.Cache` on a shared store publishes what it dropped on the
store's own server (``store/bus.py``: Redis pub/sub, PostgreSQL LISTEN/NOTIFY), and applies
what other replicas dropped to its own layers, on a listener thread.

Messages are JSON: ``{"o": origin, "k": key}`` (a delete), ``{"o": origin, "s": {selector}}`` (an
invalidation or a purge), ``{"o": origin}`` (a clear). A replica whose subscription was lost may
have missed some: when it subscribes again it drops every local copy and rebuilds them from the
store, as after a clear. Publishing is fail-open: a failed publish is counted as a fault, and
the store re-check still keeps the dead entries from being served.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict

from thrifty.cache.exact import ExactLayer
from thrifty.cache.types import Layer
from thrifty.entry import Selector
from thrifty.store import Store
from thrifty.store.bus import Bus

log = logging.getLogger("thrifty.cache.broadcast")


class Broadcast:
    """Publishes this cache's drops; applies other replicas' drops to the local layers.

    Args:
        bus: the store's channel.
        exact: the exact layer (its built-value memo).
        layers: the further layers (``Layer.dropped_elsewhere``).
        fault: reports a failed publish or a failing message (counted, never raised).
    """

    def __init__(
        self,
        bus: Bus,
        exact: ExactLayer,
        layers: Sequence[Layer],
        fault: Callable[[str, BaseException], None],
    ) -> None:
        self.bus = bus
        self.origin = uuid.uuid4().hex
        self._exact = exact
        self._layers = tuple(layers)
        self._fault = fault
        self.received = 0
        """Messages from other replicas applied here."""
        self.resyncs = 0
        """Times the local copies were dropped because messages may have been missed."""
        self.subscribed = threading.Event()
        """Set while the subscription is live (tests wait for it)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=bus.listen,
            args=(self._deliver, self._resync, self._stop, self.subscribed),
            name=f"thrifty-broadcast-{bus.channel}",
            daemon=True,
        )
        self._thread.start()

    # ------------------------------------------------------------ sending
    def deleted(self, key: str) -> None:
        self._publish({"o": self.origin, "k": key})

    def invalidated(self, selector: Selector) -> None:
        fields = {k: v for k, v in asdict(selector).items() if v is not None}
        self._publish({"o": self.origin, "s": fields})

    def cleared(self) -> None:
        self._publish({"o": self.origin})

    def _publish(self, message: dict[str, object]) -> None:
        try:
            self.bus.publish(json.dumps(message, separators=(",", ":")))
        except Exception as exc:  # fail-open: the store re-check still guards every hit
            self._fault("publish", exc)

    # ------------------------------------------------------------ receiving
    def _deliver(self, payload: str) -> None:
        if self._stop.is_set():
            return  # the cache is closing
        try:
            message = json.loads(payload)
            if message.get("o") == self.origin:
                return  # this cache's own drop: already applied
            key = message.get("k")
            selector = Selector(**message["s"]) if "s" in message else None
            self.apply(key if isinstance(key, str) else None, selector)
            self.received += 1
        except Exception as exc:  # a malformed message or a failing layer: not the listener
            self._fault("broadcast", exc)

    def apply(self, key: str | None, selector: Selector | None) -> None:
        """Drop local copies: of ``key``, of entries ``selector`` matches, or (both None) of
        everything, to be rebuilt from the store."""
        if key is not None:
            self._exact.forget(key)
        else:
            self._exact.clear()
        for layer in self._layers:
            layer.dropped_elsewhere(key, selector)

    def _resync(self) -> None:
        if self._stop.is_set():
            return
        self.resyncs += 1
        log.info("subscribed again to %s: rebuilding local copies", self.bus.channel)
        try:
            self.apply(None, None)
        except Exception as exc:
            self._fault("broadcast resync", exc)

    def close(self) -> None:
        """Stop listening: the thread ends by itself within one poll (not waited for, so
        closing a cache stays instant) and applies nothing more."""
        self._stop.set()
        try:
            self.bus.close()
        except Exception as exc:
            log.debug("closing the bus: %s", exc)


def open_broadcast(
    store: Store,
    exact: ExactLayer,
    layers: Sequence[Layer],
    fault: Callable[[str, BaseException], None],
) -> Broadcast | None:
    """The broadcast of a shared store (None for one a single process uses, or when its
    server cannot be reached: the cache then works as without)."""
    if not store.shared:
        return None
    try:
        bus = store.bus()
    except Exception as exc:  # fail-open, like every other backend fault
        fault("broadcast", exc)
        return None
    return None if bus is None else Broadcast(bus, exact, layers, fault)
