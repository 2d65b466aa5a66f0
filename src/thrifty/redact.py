"""Secrets out of messages: passwords in URLs and connection strings become ``***``.

Backend URLs carry credentials (``redis://:secret@host``, ``postgresql://user:secret@host``)
and end up in exceptions, logs, health reports and error pages. Every message that shows a URL
or a driver's error text goes through :func:`redact_text` (or :func:`redact_url` when it holds
one URL), so a password never leaves the process in plain text.
"""

from __future__ import annotations

import functools
import re

MASK = "***"

# ``scheme://user:password@`` (the user may be empty: ``redis://:password@host``). Like
# ``urlsplit``, the password runs to the last ``@`` of the network location (which ends at
# ``/``, ``?`` or ``#``), so one holding ``@`` or ``:`` is masked whole; whitespace and quotes
# end a URL inside a longer message.
_URL_PASSWORD = re.compile(r"(?P<head>://[^:@/\s'\"]*:)[^\s'\"/?#]*@")
# libpq keyword form (``host=db password=secret``), quoted or not, and ``?password=`` queries.
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&'\"]+)", re.IGNORECASE
)


# Any URL (``http://10.0.0.7:8000/v1/chat``), and aiohttp's ``host name:port`` wording of a
# failed connection: where the gateway's upstreams live is not the client's business.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>:.,;)]")
_HOST_PORT = re.compile(r"\bhost \S+:\d+")
ENDPOINT_MASK = "<upstream>"


def redact_text(text: str) -> str:
    """``text`` with every password of a URL or ``password=`` setting replaced by ``***``."""
    if "@" in text:  # no password in a URL without one; the regex starts at "://", a literal
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    if "password" in text.lower():
        text = _KEYWORD_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return text


def hide_endpoints(text: str) -> str:
    """``text`` with every URL and ``host name:port`` replaced by ``<upstream>``: for
    messages that leave the gateway (a 502 names the model that failed, not where it runs).

    >>> hide_endpoints("cannot reach http://10.0.0.7:8000/v1: Cannot connect to host db:80")
    'cannot reach <upstream>: Cannot connect to host <upstream>'
    """
    if "://" in text:
        text = _URL.sub(ENDPOINT_MASK, text)
    if "host " in text:
        text = _HOST_PORT.sub("host " + ENDPOINT_MASK, text)
    return text


@functools.lru_cache(maxsize=64)
def redact_url(url: str) -> str:
    """A URL fit for messages: its password (if any) replaced by ``***``.

    Memoized: a process has a handful of backend URLs, and an open breaker builds an error
    naming its URL on every refused call.

    >>> redact_url("redis://:secret@cache:6379/0")
    'redis://:***@cache:6379/0'
    >>> redact_url("postgresql://app:s3cr3t@db/prod?sslmode=require")
    'postgresql://app:***@db/prod?sslmode=require'
    """
    return redact_text(url)


__all__ = ["ENDPOINT_MASK", "MASK", "hide_endpoints", "redact_text", "redact_url"]
