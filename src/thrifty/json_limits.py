"""How deep JSON may nest, and a depth count that cannot itself overflow the stack.

The request key's normalizer and other code walk request bodies recursively; a body nested a few
hundred levels deep (2 KB of brackets) once reached Python's recursion limit there and came back as
a 500. The gateway refuses such bodies when it reads them (``server/bodies.py``) and batch input
files refuse such lines (``batching/jobfile.py``), both by this one limit.
"""

from __future__ import annotations

from typing import Any

#: The deepest JSON nesting a request may have (the OpenAI wire format needs under ten levels;
#: recursive code over the body must stay far below Python's recursion limit).
MAX_JSON_DEPTH = 64


def json_depth(value: Any, limit: int) -> int:
    """How deep ``value`` nests (a scalar is 0, ``[]`` is 1), counted without recursion and
    given up past ``limit`` (the result is then ``limit + 1``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        depth += 1
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in item if isinstance(child, dict | list))
    return deepest


__all__ = ["MAX_JSON_DEPTH", "json_depth"]
