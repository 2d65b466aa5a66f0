"""The gateway's YAML configuration, in the shape LiteLLM users already have.

```yaml
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY, rpm: 500}
  - model_name: local
    litellm_params: {model: thrifty/local}
router_settings: {num_retries: 2, timeout: 30, fallbacks: [{gpt-4o-mini: [local]}],
                  allowed_fails: 3, cooldown_time: 30}
cache: {url: "sqlite:///.thrifty/cache.db", ttl: 86400, namespace: default}
keys: [{key: os.environ/TEAM_A_KEY, tenant: team-a, rpm: 60, tpm: 100000, max_budget_usd: 5}]
admin_key: os.environ/THRIFTY_ADMIN_KEY
prices: {gpt-4o-mini: {input_cost_per_token: 1.5e-7, output_cost_per_token: 6.0e-7}}
routes:   # a route model: the cheapest model of the chain expected to answer well
  - name: thrifty/auto
    chain: [gpt-4o-mini, gpt-4o]
    rules: [{when: {code: true}, to: gpt-4o}, {when: {min_prompt_tokens: 2000}, to: gpt-4o}]
    router: {path: router.json, target_strong_share: 0.4}
```

A ``model_list`` entry may also be written flat (``{model_name, model, api_base, ...}``). Any
string ``os.environ/NAME`` is replaced by that environment variable. Every error names the file
and the field (``config.yaml: model_list[0].litellm_params.model: Field required``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from thrifty.errors import ConfigError
from thrifty.ledger import DEFAULT_RETENTION_DAYS
from thrifty.policy import MAX_TTL
from thrifty.server.bodies import MAX_JSON_DEPTH, MAX_UPLOAD_BYTES
from thrifty.server.mechanisms import CompressionSettings, DistillSettings
from thrifty.server.route_config import RouteSettings
from thrifty.store import DEFAULT_URL

ENV_PREFIX = "os.environ/"
CONFIG_ENV = "THRIFTY_CONFIG"

#: ``litellm_params.model`` prefix -> the kind of provider that serves it (declared once).
ProviderKind = Literal["openai", "anthropic", "local", "student"]
PROVIDER_KINDS: Mapping[str, ProviderKind] = {
    "openai": "openai",
    "openai_compatible": "openai",
    "hosted_vllm": "openai",
    "vllm": "openai",
    "llamacpp": "openai",
    "anthropic": "anthropic",
    "local": "local",
    "thrifty": "local",
    "student": "student",  # student/<model_dir>: a distilled student (providers/student.py)
}
DEFAULT_OPENAI_BASE = "https://api.openai.com/v1"


def provider_of(model: str) -> tuple[str, str]:
    """``("openai", "gpt-4o-mini")`` for ``openai/gpt-4o-mini``; a bare name is OpenAI's."""
    prefix, _, rest = model.partition("/")
    if not rest:
        return "openai", model
    return prefix.lower(), rest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeploymentParams(BaseModel):
    """One upstream deployment (LiteLLM's ``litellm_params``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(min_length=1)
    """``provider/name``: ``openai/gpt-4o-mini``, ``hosted_vllm/llama3``, ``thrifty/local``."""
    api_base: str | None = None
    """The upstream's base URL including ``/v1``; OpenAI's (or Anthropic's) when omitted."""
    api_key: str | None = None
    """Sent as a bearer token, or ``x-api-key`` to Anthropic (write it as ``os.environ/NAME``)."""
    rpm: PositiveInt | None = None
    """Requests per minute this deployment accepts (load balancing and cooldown use it)."""
    tpm: PositiveInt | None = None
    """Tokens per minute this deployment accepts."""
    timeout: PositiveFloat | None = None
    """Seconds per call; ``router_settings.timeout`` when omitted."""
    stream_timeout: PositiveFloat | None = None
    """Seconds a stream may go without a chunk; ``router_settings.stream_timeout`` when omitted."""
    model_path: str | None = None
    """For the local model: a GGUF file instead of the shipped SmolLM2-135M-Instruct."""

    @field_validator("api_base")
    @classmethod
    def _no_credentials(cls, url: str | None) -> str | None:
        # aiohttp refuses a URL with user:password@ beside the bearer header (every call a 500),
        # and the URL would carry a secret into messages; the key belongs in api_key
        if url is not None and urlsplit(url).password is not None:
            raise ValueError("must not hold credentials (user:password@); put the key in api_key")
        return url

    @model_validator(mode="after")
    def _known_provider(self) -> DeploymentParams:
        prefix, _ = provider_of(self.model)
        if prefix not in PROVIDER_KINDS:
            raise ValueError(
                f"provider {prefix!r} in model {self.model!r} is not supported; use one of: "
                + ", ".join(f"{p}/" for p in PROVIDER_KINDS)
            )
        return self

    @property
    def kind(self) -> ProviderKind:
        return PROVIDER_KINDS[provider_of(self.model)[0]]


class ModelEntry(BaseModel):
    """One ``model_list`` item: a public model name served by one deployment."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model_name: str = Field(min_length=1)
    litellm_params: DeploymentParams
    model_info: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        """Accept ``{model_name, model, api_base, ...}`` as a short form."""
        if isinstance(data, Mapping) and "litellm_params" not in data and "model" in data:
            keep = {"model_name", "model_info"}
            params = {k: v for k, v in data.items() if k not in keep}
            return {**{k: data[k] for k in keep if k in data}, "litellm_params": params}
        return data


class RouterSettings(BaseModel):
    """Retries, fallbacks and cooldowns (LiteLLM's ``router_settings``; unknown keys ignored)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    num_retries: NonNegativeInt = 2
    """Retries per deployment on 429, 5xx, timeouts and connection errors."""
    timeout: PositiveFloat = 600.0
    """Seconds per upstream call."""
    stream_timeout: PositiveFloat = 60.0
    """Seconds a stream may go without a chunk (before the first one too) before it counts as a
    failure of its deployment (cooled like any failure; the next deployment answers if nothing
    was sent yet). Longer than a reasoning model's silence before its first token, far shorter
    than ``timeout``, which bounds a whole call. Local models get no such limit unless their
    own ``stream_timeout`` sets one (their requests queue for one model)."""
    fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    """``[{gpt-4o: [gpt-4o-mini, local]}]``: who answers when a model keeps failing."""
    allowed_fails: NonNegativeInt = 3
    """Failures in a row before a deployment is cooled down."""
    cooldown_time: NonNegativeFloat = 30.0
    """Seconds a cooled-down deployment gets no traffic."""
    retry_base_delay: NonNegativeFloat = 0.5
    """Seconds of the first backoff ceiling (doubling, with full jitter)."""
    prompt_cache_affinity: bool = False
    """Send requests that share a long prompt prefix (tenant, system prompt, documents) to the
    same deployment, so the provider's prompt cache stays warm (``routing/affinity.py``)."""
    prompt_cache_key: bool = False
    """With ``prompt_cache_affinity``: also set OpenAI's ``prompt_cache_key`` to the prefix key
    on requests that carry none (for OpenAI-compatible upstreams)."""


SemanticPolicyName = Literal["fixed", "verified"]
"""``fixed``: one cosine bar (feedback moves an entry's own bar); ``verified``: per-entry bars
learned by checking near misses against the model, so that at most ``semantic_delta`` of hits
are wrong."""


class SemanticPolicySettings(_Strict):
    """The semantic policy of one namespace (``tenant`` or ``tenant/namespace``); unset fields
    take the cache's."""

    semantic_policy: SemanticPolicyName | None = None
    semantic_delta: float | None = Field(default=None, gt=0.0, lt=1.0)
    semantic_agreement: bool | None = None
    """Neighbourhood agreement in this namespace (None: as ``cache.semantic_agreement``)."""


class CacheSettings(_Strict):
    """Where and how long answers are kept."""

    enabled: bool = True
    url: str = DEFAULT_URL
    ttl: PositiveFloat | None = Field(default=None, le=MAX_TTL)
    """Seconds an answer lives (at most ten years); None keeps it until evicted or
    invalidated."""
    namespace: str = Field(default="default", min_length=1)
    """The namespace of requests without a key (tenants get their own)."""
    cache_temperature: bool = False
    """Also cache requests that set ``temperature > 0`` (otherwise only with the opt-in header)."""
    max_entries: PositiveInt | None = None
    max_bytes: PositiveInt | None = None
    lease_ttl: PositiveFloat = 60.0
    """Seconds a replica's lease on an in-flight miss lives: identical requests on the other
    replicas wait for it, at most this long if the replica died. Keep it above the slowest
    upstream answer (an expired lease lets a second replica call too)."""
    semantic: bool = False
    """Also answer reworded questions, within the same model, parameters, system prompt, earlier
    turns and tenant (``X-Thrifty-Cache-Status: SEMANTIC_HIT``)."""
    semantic_threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    """Cosine similarity a semantic hit needs; None: thrifty's calibrated default."""
    semantic_index: str | None = None
    """Where the semantic index lives: a folder (default: beside the cache), or a vector engine
    shared by every replica, ``milvus-lite:///index.db`` (embedded) or ``milvus://host:19530``."""
    semantic_policy: SemanticPolicyName = "fixed"
    """How hits are decided: ``fixed`` (``semantic_threshold``) or ``verified``."""
    semantic_delta: float = Field(default=0.02, gt=0.0, lt=1.0)
    """Under ``verified``: the largest acceptable share of wrong hits."""
    semantic_namespaces: dict[str, SemanticPolicySettings] = Field(default_factory=dict)
    """Per namespace (``tenant`` or ``tenant/namespace``): its own policy and delta."""
    semantic_agreement: bool = True
    """Neighbourhood agreement (:mod:`thrifty.semantic.agreement`): a question whose near cached
    questions carry different short answers is checked, not served; one among agreeing entries is
    served from cosine 0.85; free-text answers never conflict (benchmarks/RESULTS.md)."""
    embedder: str = "minilm"
    """``minilm`` (local all-MiniLM-L6-v2 on onnxruntime) or ``hashing`` (lexical, no model)."""
    semantic_off: list[str] = Field(default_factory=list)
    """Namespaces (``tenant`` or ``tenant/namespace``) kept exact-only when ``semantic`` is on."""
    pii: Literal["off", "skip_store", "redact"] = "off"
    """Personal data in a prompt or answer: stored as is (``off``), never stored (``skip_store``:
    answered, not cached) or stored with placeholders (``redact``)."""
    pii_custom: dict[str, str] = Field(default_factory=dict)
    """Extra patterns the PII guard treats as personal data: name -> regular expression."""
    pii_namespaces: dict[str, Literal["off", "skip_store", "redact"]] = Field(default_factory=dict)
    """``pii`` per namespace: ``tenant`` (and its ``tenant/…``) or ``tenant/namespace`` -> mode."""
    encryption_key: str | None = Field(default=None, repr=False)
    """Seals stored answers and prompts with AES-GCM: 32 bytes as hex or base64, optionally
    ``ID:SECRET``; write it as ``os.environ/NAME``."""
    namespace_ttl: dict[str, PositiveFloat] = Field(default_factory=dict)
    """Seconds answers live per namespace (``tenant`` or ``tenant/namespace``), over ``ttl``."""
    tag_ttl: dict[str, PositiveFloat] = Field(default_factory=dict)
    """Seconds answers carrying a tag live (``{fx-rates: 3600}``); the shortest tag wins,
    unless the request set its own TTL. Tags come from ``X-Thrifty-Tags``, ``thrifty.tags``
    and the ids of ``thrifty.context`` documents."""
    old_encryption_keys: list[str] = Field(default_factory=list, repr=False)
    """Keys of earlier rotations: entries they sealed stay readable until they expire."""

    @field_validator("pii", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML reads a bare ``pii: off`` as ``false``: it means ``off``."""
        return "off" if value is False else value


class KeySettings(_Strict):
    """An API key, the tenant it stands for, and its limits."""

    key: str = Field(min_length=1)
    tenant: str = Field(min_length=1, pattern=r"^[^/]+$")
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    max_budget_usd: NonNegativeFloat | None = None
    budget_period: Literal["total", "day", "month"] = "total"
    """``max_budget_usd`` in all, or afresh each UTC day or calendar month."""
    semantic: bool = True
    """False keeps this key's tenant exact-only when the cache is semantic."""
    pii: Literal["off", "skip_store", "redact"] | None = None
    """Overrides ``cache.pii`` for this key's tenant (keys of one tenant must agree)."""
    semantic_policy: SemanticPolicyName | None = None
    """This key's tenant's semantic policy (None: the cache's, or its namespace's)."""
    semantic_delta: float | None = Field(default=None, gt=0.0, lt=1.0)
    semantic_agreement: bool | None = None
    """Neighbourhood agreement for this key's tenant (None: the cache's, or its namespace's)."""


class TenantBudget(_Strict):
    """What all the keys of one tenant may spend together."""

    max_budget_usd: NonNegativeFloat
    budget_period: Literal["total", "day", "month"] = "total"


class LimitsSettings(_Strict):
    """Where rate-limit and budget counters live (``redis://`` or ``postgresql://`` share them
    across replicas), and the tenants' budgets."""

    url: str | None = None
    """``memory://``, ``redis://…`` or ``postgresql://…``; by default the cache's URL when it
    is Redis, else memory."""
    tenants: dict[str, TenantBudget] = Field(default_factory=dict)
    """Tenant -> its budget, reserved together with each of its keys' own."""


class LedgerSettings(_Strict):
    """The savings ledger: one row per answered request (``thrifty stats --ledger``,
    ``GET /admin/ledger/summary``)."""

    enabled: bool = True
    url: str | None = None
    """``sqlite:///path.db``, ``postgresql://…`` or ``memory://``; by default a SQLite file
    beside a SQLite cache (``ledger.db``), memory beside a memory cache."""
    retention_days: PositiveFloat | None = DEFAULT_RETENTION_DAYS
    """Rows older than this are removed; None keeps them all."""


class ServerSettings(_Strict):
    max_body_bytes: PositiveInt = 16 * 1024 * 1024
    """Larger request bodies get 413."""
    max_json_depth: PositiveInt = MAX_JSON_DEPTH
    """JSON bodies nested deeper get 400."""
    max_upload_bytes: PositiveInt = MAX_UPLOAD_BYTES
    """Larger ``POST /v1/files`` uploads get 413."""
    max_header_bytes: PositiveInt = 32 * 1024
    """A request line and headers larger than this get 431 (``thrifty serve``)."""
    header_timeout: PositiveFloat = 10.0
    """Seconds a connection may take to send a request's headers before it is closed, so
    half-open or trickling clients cannot hold connections (``thrifty serve``)."""
    max_connections: PositiveInt | None = None
    """Connections and requests a worker takes at once; more get 503 (None: no limit)."""


class GatewayConfig(BaseModel):
    """The whole file. LiteLLM's other top-level blocks are accepted and ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_list: list[ModelEntry] = Field(default_factory=list)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    keys: list[KeySettings] = Field(default_factory=list)
    admin_key: str | None = None
    prices: dict[str, dict[str, Any]] = Field(default_factory=dict)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    routes: list[RouteSettings] = Field(default_factory=list)
    compression: CompressionSettings = Field(default_factory=CompressionSettings)
    distill: DistillSettings = Field(default_factory=DistillSettings)
    litellm_settings: dict[str, Any] = Field(default_factory=dict)
    general_settings: dict[str, Any] = Field(default_factory=dict)
    environment_variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> GatewayConfig:
        names = {m.model_name for m in self.model_list}
        for i, rule in enumerate(self.router_settings.fallbacks):
            for source, targets in rule.items():
                for name in (source, *targets):
                    if name not in names:
                        raise ValueError(
                            f"router_settings.fallbacks[{i}] names model {name!r}, "
                            "which model_list does not define"
                        )
        for i, route in enumerate(self.routes):
            if route.name in names or route.name in {r.name for r in self.routes[:i]}:
                raise ValueError(f"routes[{i}].name {route.name!r} is already a model name")
            for name in route.chain:
                if name not in names:
                    raise ValueError(
                        f"routes[{i}].chain names model {name!r}, which model_list does not define"
                    )
        seen: set[str] = set()
        for i, key in enumerate(self.keys):
            if key.key in seen:
                raise ValueError(f"keys[{i}].key repeats an earlier key")
            seen.add(key.key)
        return self

    @property
    def master_key(self) -> str | None:
        """``admin_key``, else LiteLLM's ``general_settings.master_key``."""
        key = self.admin_key or self.general_settings.get("master_key")
        return str(key) if key else None

    def model_names(self) -> list[str]:
        """Public model names, in first-seen order."""
        return list(dict.fromkeys(m.model_name for m in self.model_list))

    def fallbacks_for(self, model_name: str) -> list[str]:
        for rule in self.router_settings.fallbacks:
            if model_name in rule:
                return list(rule[model_name])
        return []


def default_config() -> GatewayConfig:
    """No file: the embedded local model as ``local`` and ``smollm2`` and, for any other model
    name (``gpt-4o-mini`` in a copied OpenAI snippet), as the catch-all entry ``*``; the local
    embedder as ``local-embed``; the SQLite cache."""
    local: dict[str, Any] = {"model": "thrifty/local"}
    return GatewayConfig(
        model_list=[
            *(
                ModelEntry(model_name=name, litellm_params=DeploymentParams(**local))
                for name in ("local", "smollm2", "*")
            ),
            ModelEntry(
                model_name="local-embed",
                litellm_params=DeploymentParams(model="thrifty/local-embed"),
            ),
        ]
    )


def _resolve_env(value: Any, path: str, env: Mapping[str, str], source: str) -> Any:
    """Replace every ``os.environ/NAME`` string, naming the field when NAME is unset."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :]
        if name not in env:
            raise ConfigError(f"{source}: {path}: environment variable {name} is not set")
        return env[name]
    if isinstance(value, Mapping):
        return {
            k: _resolve_env(v, f"{path}.{k}" if path else str(k), env, source)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve_env(v, f"{path}[{i}]", env, source) for i, v in enumerate(value)]
    return value


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("function-"):  # validator names pydantic adds
            out += f".{part}" if out else str(part)
    return out


def parse_config(
    data: Any, *, source: str = "<config>", env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Validate already-loaded YAML data.

    Raises:
        ConfigError: naming ``source`` and the first bad field.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping, not {type(data).__name__}")
    data = _resolve_env(data, "", os.environ if env is None else env, source)
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown key{_did_you_mean(first['loc'])}"
        where = f"{_field_path(first['loc'])}: " if first["loc"] else ""
        raise ConfigError(f"{source}: {where}{message}") from exc


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """``; did you mean 'ttl'?`` for a misspelled key at ``loc``, naming the close known keys."""
    import difflib
    import typing

    model: Any = GatewayConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None:
            return ""
    known = list(getattr(model, "model_fields", {}))
    close = difflib.get_close_matches(str(loc[-1]), known, n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def pii_by_namespace(config: GatewayConfig) -> dict[str, str]:
    """``cache.pii_namespaces`` with each key's ``pii`` as its tenant's (a namespace's own
    entry wins over its key's).

    Raises:
        ConfigError: two keys of one tenant ask for different modes.
    """
    by_tenant: dict[str, str] = {}
    for key in config.keys:
        if key.pii is None:
            continue
        if by_tenant.setdefault(key.tenant, key.pii) != key.pii:
            raise ConfigError(f"keys of tenant {key.tenant!r} set different pii modes")
    return {**by_tenant, **config.cache.pii_namespaces}


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """The config in ``path``, else in ``$THRIFTY_CONFIG``, else :func:`default_config`.

    Raises:
        ConfigError: the file is missing, is not YAML, or has a bad field (named).
    """
    import yaml

    env = os.environ if env is None else env
    chosen = path if path is not None else env.get(CONFIG_ENV) or None
    if chosen is None:
        return default_config()
    file = Path(chosen)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from exc
    return parse_config(data, source=str(file), env=env)
