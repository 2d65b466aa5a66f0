"""Every exception thrifty raises on purpose.

ThriftyError
├── ConfigError            bad configuration or arguments (exit code 2 on the CLI)
│   ├── UnknownSchemeError a cache URL whose scheme no backend serves
│   └── JobFileError       a batch input file with invalid lines (each listed)
├── BackendError           a storage backend failed (the Cache turns it into a miss)
│   └── BackendUnavailableError   the backend cannot be reached (when opened, or during an
│                                 outage: its circuit breaker then fails calls at once)
├── CorruptEntryError      a stored payload that cannot be decoded (treated as a miss)
├── ProviderError          a model provider failed
│   ├── ProviderUnavailableError  the provider cannot be loaded or reached
│   ├── UpstreamError      an HTTP upstream answered an error status (status, headers, body)
│   │   ├── UpstreamTimeoutError      no answer within the timeout
│   │   └── UpstreamConnectionError   the upstream could not be reached
│   └── AllDeploymentsFailedError retries and fallbacks used up (gateway: 502/503/504)
├── UnknownModelError      no deployment serves the requested model name (gateway: 404)
├── LimitExceededError     a key's rate limit or budget refuses the request (gateway: 429)
│   ├── RateLimitExceededError    requests or tokens per minute
│   └── BudgetExceededError       the key's max_budget_usd
└── CoalesceTimeoutError   waited too long for another caller's identical request
"""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.redact import redact_text, redact_url


class ThriftyError(Exception):
    """Root of thrifty's exceptions."""


class ConfigError(ThriftyError, ValueError):
    """Configuration or arguments are invalid."""


class UnknownSchemeError(ConfigError):
    """A cache URL names a scheme that no backend serves."""

    def __init__(self, url: str, known: tuple[str, ...]) -> None:
        self.url = redact_url(url)
        self.known = known
        super().__init__(
            f"unknown cache URL scheme in {self.url!r}; use one of: "
            + ", ".join(f"{s}://" for s in known)
            + _scheme_hint(self.url, known)
        )


def _scheme_hint(url: str, known: tuple[str, ...]) -> str:
    """``sqlite:/x.db`` has a known scheme but no ``//``: say what was probably meant."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() not in known or rest.startswith("//"):
        return ""
    if scheme.lower() == "sqlite":
        meant = f"sqlite:///{rest}"  # sqlite:///rel.db is relative, sqlite:////abs.db absolute
        kind = "absolute" if rest.startswith("/") else "relative"
        return f"; did you mean {meant!r} (the {kind} path {rest!r})?"
    return f"; did you mean {f'{scheme}://{rest}'!r}?"


@dataclass(frozen=True, slots=True)
class LineProblem:
    """One invalid line of an input file (``line`` 0: the file as a whole)."""

    line: int
    message: str


class JobFileError(ConfigError):
    """A batch input file cannot be run; ``problems`` lists every bad line."""

    def __init__(self, path: str, problems: list[LineProblem]) -> None:
        self.path = path
        self.problems = problems
        shown = [f"  line {p.line}: {p.message}" if p.line else f"  {p.message}" for p in problems]
        if len(shown) > 50:
            shown = [*shown[:50], f"  … and {len(shown) - 50} more"]
        super().__init__(f"invalid batch file {path}:\n" + "\n".join(shown))


class BackendError(ThriftyError):
    """A storage backend failed during an operation."""


class BackendUnavailableError(BackendError):
    """A storage backend cannot be reached: when it is opened, or during an outage.

    The URL and the reason are stored with passwords masked (they end up in logs, health
    reports and error pages).

    Attributes:
        url: the backend's URL, password masked.
        reason: what failed (the driver's message, or the breaker's), passwords masked.
        operation: the store method that failed (``get``, ``set``…), None when opening.
        retry_after: seconds until the backend's circuit breaker lets a call through again;
            None when the call itself reached the backend and failed.
    """

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        operation: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.url = redact_url(url)
        self.reason = redact_text(reason)
        self.operation = operation
        self.retry_after = retry_after
        during = f" during {operation}" if operation else ""
        super().__init__(f"cache backend {self.url!r} is unreachable{during}: {self.reason}")


class CorruptEntryError(ThriftyError):
    """A stored payload could not be decoded."""


class ProviderError(ThriftyError):
    """A model provider failed."""


class ProviderUnavailableError(ProviderError):
    """A model provider cannot be loaded or reached."""


class UpstreamError(ProviderError):
    """An HTTP upstream failed; carries what retries and error mapping need.

    Attributes:
        status: the upstream's HTTP status (None when no answer came: timeouts, refused
            connections).
        headers: the upstream's response headers (``Retry-After``, ``retry-after-ms``,
            ``x-ratelimit-*``), lower-cased names.
        body: the decoded error body (a dict when it was JSON, else text).
        provider: the provider's name, for logs and messages.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        body: object = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.provider = provider

    @property
    def retryable(self) -> bool:
        """True for 408, 409, 429, 5xx, timeouts and connection failures."""
        return self.status is None or self.status in (408, 409, 429) or self.status >= 500


class UpstreamTimeoutError(UpstreamError):
    """The upstream gave no (complete) answer within the timeout."""


class UpstreamConnectionError(UpstreamError):
    """The upstream could not be reached (refused, reset, DNS)."""


class AllDeploymentsFailedError(ProviderError):
    """Every deployment of a model and of its fallbacks failed, after retries.

    Attributes:
        model: the model name the caller asked for.
        tried: the model names tried, in order (the model, then its fallbacks).
        attempts: one record per upstream attempt (``thrifty.routing.Attempt``).
        last_error: the last upstream error (also the ``__cause__``); None when no deployment
            was available at all.
        status_code: what a gateway should answer: 504 after a timeout, 503 when nothing was
            available or the upstream was overloaded (429/503), else 502.
        retry_after: seconds until a cooled-down deployment is tried again, when known.
    """

    def __init__(
        self,
        model: str,
        tried: list[str],
        attempts: list[object],
        last_error: BaseException | None,
        status_code: int,
        retry_after: float | None = None,
    ) -> None:
        self.model = model
        self.tried = tried
        self.attempts = attempts
        self.last_error = last_error
        self.status_code = status_code
        self.retry_after = retry_after
        reason = f"last error: {last_error}" if last_error else "no deployment available"
        super().__init__(
            f"model {model!r} failed after {len(attempts)} attempt(s) on "
            f"{' -> '.join(tried)}; {reason}"
        )


class UnknownModelError(ThriftyError, LookupError):
    """No deployment serves the requested model name."""

    def __init__(self, model: str, known: list[str]) -> None:
        self.model = model
        self.known = known
        super().__init__(f"unknown model {model!r}; served models: {', '.join(known) or '(none)'}")


class LimitExceededError(ThriftyError):
    """A key's rate limit or budget refuses a request.

    Attributes:
        limit: which limit refused it: ``"requests"``, ``"tokens"`` or ``"budget"``.
        retry_after: seconds until the request could pass (None: not before the budget grows).
        headers: OpenAI's ``x-ratelimit-*`` headers (and ``retry-after``) for the 429 response.
    """

    def __init__(
        self, message: str, *, limit: str, retry_after: float | None, headers: dict[str, str]
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after
        self.headers = headers


class RateLimitExceededError(LimitExceededError):
    """The key's requests-per-minute or tokens-per-minute limit is reached."""


class BudgetExceededError(LimitExceededError):
    """The key's spend plus what is reserved would pass its ``max_budget_usd``."""


class CoalesceTimeoutError(ThriftyError):
    """Waited too long for the result of an identical in-flight request."""
