"""Which entries to evict when a persistent store is over its limits.

Persistent backends evict the oldest-created entries first (FIFO), not the least recently used:
LRU would turn every hit into a write, and a hit must stay a single read.
"""

from __future__ import annotations

from collections.abc import Iterable


def over_limits(
    entries: int, size: int, max_entries: int | None, max_bytes: int | None
) -> tuple[int, int]:
    """(entries, bytes) above the limits; both zero when within them."""
    extra_entries = max(0, entries - max_entries) if max_entries is not None else 0
    extra_bytes = max(0, size - max_bytes) if max_bytes is not None else 0
    return extra_entries, extra_bytes


def pick_victims(
    oldest_first: Iterable[tuple[str, int]], extra_entries: int, extra_bytes: int
) -> list[str]:
    """Keys to drop, oldest first, until both excesses are covered."""
    victims: list[str] = []
    for key, size in oldest_first:
        if extra_entries <= 0 and extra_bytes <= 0:
            break
        victims.append(key)
        extra_entries -= 1
        extra_bytes -= size
    return victims
