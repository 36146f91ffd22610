"""The one schema of perfd's settings: every table a typed Struct, every key's trust and environment name.

A table here is what `perfd.toml` (or `[tool.perfd]` in pyproject.toml), the
user's `~/.config/perfd/config.toml` and `PERFD_*` variables may set. A key
not here is an error, never silently ignored. Keys that send data or secrets
somewhere, read or write outside the workspace, or spend money need the
user's trust when a workspace file sets them (see perfd.settings.trust).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import msgspec

from perfd.paths import PLANS_DIR

_Pos = Annotated[int, msgspec.Meta(ge=1)]
_NonNeg = Annotated[int, msgspec.Meta(ge=0)]
_PosF = Annotated[float, msgspec.Meta(gt=0)]
_NonNegF = Annotated[float, msgspec.Meta(ge=0)]


# `[llm] context_tokens`: the prompt budget of `run` (about 128 KB of text; fits every common model).
DEFAULT_CONTEXT_TOKENS = 32_000


class WorkspaceSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`[workspace]`: where the plans are. Plan-format settings: no trust needed."""

    plans_dir: str = PLANS_DIR  # relative to the workspace root, inside it


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`[cache]`: the parse cache in memory."""

    capacity: _Pos = 4096  # files held (grown to fit every plan of a large workspace unless set)
    ttl_s: _PosF = 3600.0  # an entry not re-validated for this long is read again
    parse_workers: _NonNeg | None = None  # processes for a cold parse; None or 0: one per core


class DaemonSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`[daemon]`: the per-workspace daemon's life and limits."""

    idle_timeout_s: _NonNegF = 1800.0  # exit after this long without a request (0: never)
    max_rss_mb: _NonNegF = 0.0  # restart past this resident memory (0: no limit)
    # The background verification pass: every this many seconds every file and folder an answer holds is
    # stat'ed, catching what raises no event (a hard link written elsewhere, mmap, a restored mtime). 0: off;
    # below 1 s counts as 1 s; a pass never takes more than 1% of one core (0.1-0.2 s a pass at 1,500 plans).
    verify_interval_s: _NonNegF = 30.0
    metrics_addr: str | None = None  # opt-in Prometheus /metrics, e.g. "127.0.0.1:9464"
    max_connections: _Pos = 16384  # open at once (kept under the open-file limit)
    connection_idle_s: _PosF = 300.0
    max_pending: _Pos = 256
    max_buffered_mb: _PosF = 256.0


Provider = Literal["openai", "anthropic", "azure"]
ANTHROPIC_VERSION = "2023-06-01"
AZURE_API_VERSION = "2024-10-21"
# Anthropic's Messages API requires max_tokens; sent when neither the call nor the settings give one.
ANTHROPIC_MAX_TOKENS = 4096


class LLMConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One model provider and how to call it: `[llm]`, and each `[models.NAME]`."""

    base_url: str
    model: str
    # The wire protocol: "openai" (any OpenAI-compatible chat-completions server), "anthropic"
    # (the Messages API), "azure" (Azure OpenAI: `model` or `deployment` in the URL path).
    provider: Provider = "openai"
    # Name of the environment variable holding the key (None: no auth header).
    api_key_env: str | None = None
    # Azure's api-version query parameter; Anthropic's anthropic-version header.
    api_version: str | None = None
    deployment: str | None = None  # Azure: the deployment's name (default: model)
    # Extra request headers with plain values (no secrets: the settings file may be shared) ...
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    # ... and header -> NAME of the environment variable holding its value (read at call time).
    headers_env: dict[str, str] = msgspec.field(default_factory=dict)
    # Named models ([models.NAME]) that serve a call when this one fails after its retries
    # or its breaker is open, before any byte of an answer arrived; tried in order.
    fallback: list[str] = msgspec.field(default_factory=list)

    # Rate limits over a sliding window of `window_s` seconds (60 = per minute;
    # tests and benchmarks shorten it). None = no client-side limit.
    rpm: _Pos | None = None
    tpm: _Pos | None = None
    window_s: _PosF = 60.0
    # Completion tokens reserved against `tpm` when a call sets no max_tokens;
    # reconciled with the server's `usage` once the answer arrives.
    completion_tokens_estimate: _Pos = 1024
    # The prompt `run` sends, with the files it refers to inlined, in estimated tokens (UTF-8 bytes / 4):
    # what does not fit is cut at a marked point (perfd.app.context). Raising it needs trust.
    context_tokens: _Pos = DEFAULT_CONTEXT_TOKENS

    max_connections: _Pos = 8
    max_keepalive_connections: _Pos | None = None  # default: max_connections
    keepalive_expiry_s: _PosF = 30.0
    # Requests in flight at once; default and upper bound: max_connections
    # (more would only queue inside the pool, where the timeout would run).
    max_concurrency: _Pos | None = None

    # Per attempt: the whole answer for plain calls; for streams the wait for
    # the first token and for each following chunk.
    timeout_s: _PosF = 120.0
    # The whole call, every attempt, retry wait and rate-limit wait included: a hung or
    # trickling server cannot hold a call for (max_retries + 1) x timeout_s.
    total_timeout_s: _PosF = 300.0
    connect_timeout_s: _PosF = 10.0
    max_retries: _NonNeg = 3
    retry_base_s: _PosF = 0.5
    retry_max_s: _PosF = 30.0
    # A Retry-After longer than this is not waited for: the call fails instead.
    max_retry_after_s: _PosF = 120.0

    breaker_failures: _Pos = 5
    breaker_cooldown_s: _PosF = 30.0

    # Default sampling. 0 keeps answers reproducible and cacheable.
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = 0.0
    max_tokens: _Pos | None = None
    # Ask streaming servers for a final usage chunk (stream_options).
    stream_usage: bool = True

    cache: bool = True
    cache_temperature_above_zero: bool = False
    cache_ttl_s: _PosF = 30 * 24 * 3600.0
    cache_memory_entries: _NonNeg = 512
    cache_max_entries: _Pos = 20_000
    # The largest answer any cache level keeps or reads back (memory, disk, the team's Redis): a larger or
    # malformed value is a miss. It also bounds decompressing a value planted in a shared Redis.
    cache_max_answer_bytes: _Pos = 4 * 1024 * 1024
    cache_path: str | None = None  # default: <state_dir>/llm-cache.sqlite3

    history: bool = True
    history_max_rows: _Pos = 100_000
    history_path: str | None = None  # default: <state_dir>/llm-history.sqlite3

    # Prices (USD per 1000 tokens) for cost, cost-saved and the budget; unset: perfd.llm.prices'
    # table for known models, else the cost is unknown. Cache prices default to the prompt price.
    price_prompt_per_1k: _NonNegF | None = None
    price_completion_per_1k: _NonNegF | None = None
    price_cache_read_per_1k: _NonNegF | None = None
    price_cache_write_per_1k: _NonNegF | None = None
    # Spending limits per UTC day (currency of the prices above, USD by
    # convention). A call that could go over is refused before it is sent.
    # With a [team] table they are the team's, counted in Redis.
    budget_usd_per_day: _PosF | None = None
    budget_usd_per_plan_per_day: _PosF | None = None

    @property
    def concurrency(self) -> int:
        return min(self.max_concurrency or self.max_connections, self.max_connections)

    @property
    def has_budget(self) -> bool:
        return self.budget_usd_per_day is not None or self.budget_usd_per_plan_per_day is not None

    @property
    def keepalive_connections(self) -> int:
        return self.max_keepalive_connections or self.max_connections

    @property
    def chat_url(self) -> str:
        base = self.base_url.rstrip("/")
        if self.provider == "anthropic":
            return base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        if self.provider == "azure":
            from urllib.parse import quote

            deployment = quote(self.deployment or self.model, safe="")
            return (f"{base}/openai/deployments/{deployment}/chat/completions"
                    f"?api-version={quote(self.api_version or AZURE_API_VERSION, safe='')}")
        return base + "/chat/completions"

    @property
    def priced(self) -> bool:
        """Whether a price is known (set, or filled in from the price table when loaded)."""
        return self.price_prompt_per_1k is not None or self.price_completion_per_1k is not None

    def cost(self, prompt_tokens: int, completion_tokens: int, *, cache_read_tokens: int = 0,
             cache_write_tokens: int = 0) -> float:
        """Cost of the given usage at the configured prices (0 when unpriced: see `priced`).

        `prompt_tokens` counts every input token, those read from or written to the provider's
        prompt cache included; those are charged at their own prices when known."""
        prompt = self.price_prompt_per_1k or 0.0
        read = prompt if self.price_cache_read_per_1k is None else self.price_cache_read_per_1k
        write = prompt if self.price_cache_write_per_1k is None else self.price_cache_write_per_1k
        plain = max(prompt_tokens - cache_read_tokens - cache_write_tokens, 0)
        return (plain * prompt + cache_read_tokens * read + cache_write_tokens * write
                + completion_tokens * (self.price_completion_per_1k or 0.0)) / 1000.0


class TeamConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the team's Redis is and what to do when it is not there."""

    redis_url: str  # redis://host:6379/0, rediss://host:6380, unix:///run/redis.sock
    # NAME of the environment variable holding the password (None: no AUTH or
    # the URL's own user without password).
    redis_password_env: str | None = None
    # Key prefix; None derives it from the model's base URL and model, so the
    # daemons of one account share without configuration.
    namespace: str | None = None
    # "open": carry on with local limits and cache while Redis is unreachable;
    # "closed": refuse model calls until it is back.
    fail: Literal["open", "closed"] = "open"
    # One Redis operation may take this long before Redis counts as unreachable.
    timeout_s: _PosF = 1.0
    # After Redis failed, how long to run on the fallback before trying it again.
    retry_s: _PosF = 2.0
    # Shared answers live this long in Redis (the local cache keeps its own TTL).
    cache_ttl_s: _PosF = 7 * 24 * 3600.0
    # Answers larger than this many bytes are stored zlib-compressed.
    compress_min_bytes: Annotated[int, msgspec.Meta(ge=0)] = 1024


# Table name -> its Struct. Every field has a default, so one key can be checked on its own.
TABLES: dict[str, type[msgspec.Struct]] = {
    "workspace": WorkspaceSettings,
    "cache": CacheSettings,
    "daemon": DaemonSettings,
    "llm": LLMConfig,
    "team": TeamConfig,
}
# Tables that configure nothing until their required keys are set (a model server; a team's Redis).
OPTIONAL_TABLES: dict[str, tuple[str, ...]] = {"llm": ("base_url", "model"), "team": ("redis_url",)}


def _beyond_loopback(value: object) -> bool:
    """metrics_addr needs trust only when it would listen beyond loopback: an IP address that is not one
    (the daemon accepts IP addresses and localhost only, and refuses anything else with an error)."""
    if not isinstance(value, str):
        return False
    raw = value.strip()
    if raw.startswith("["):
        host = raw[1:].partition("]")[0]
    else:
        host = raw.rpartition(":")[0] if ":" in raw else ""
    if host in ("", "localhost"):
        return False  # a bare port listens on loopback
    import ipaddress  # only for a workspace that sets metrics_addr: kept off every other import of the schema

    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # not an address: the daemon refuses it and listens nowhere


def _always(value: object) -> bool:
    return True


def _above_default_context(value: object) -> bool:
    # A larger prompt costs more: a cloned repository may lower the budget, not raise it.
    return not isinstance(value, int) or value > DEFAULT_CONTEXT_TOKENS


def _less_verification(value: object) -> bool:
    # The verification pass catches what no event reports: a cloned repository may verify more often,
    # not turn it off or make it rarer than the default.
    return not isinstance(value, (int, float)) or value <= 0 or value > DaemonSettings().verify_interval_s


# (table, key) -> when a value of it from a workspace file needs the user's trust.
TRUST: dict[tuple[str, str], Callable[[object], bool]] = {
    ("daemon", "metrics_addr"): _beyond_loopback,
    ("daemon", "verify_interval_s"): _less_verification,
    # where prompts go and which secret goes with them; which model is paid; what it costs and may cost
    **{("llm", key): _always for key in ("base_url", "api_key_env", "model", "price_prompt_per_1k",
                                         "price_completion_per_1k", "budget_usd_per_day",
                                         "budget_usd_per_plan_per_day", "provider", "deployment",
                                         "price_cache_read_per_1k", "price_cache_write_per_1k", "fallback")},
    # headers go where prompts go: a cloned repo must not add one (nor name a variable whose
    # secret a header would carry) without the user's say-so
    **{("llm", key): _always for key in ("headers", "headers_env")},
    ("llm", "context_tokens"): _above_default_context,
    # files perfd reads answers from and writes history to
    **{("llm", key): _always for key in ("cache_path", "history_path")},
    # the team's Redis, its password's variable, and whose shared answers are read
    **{("team", key): _always for key in ("redis_url", "redis_password_env", "namespace")},
}

# Environment names kept from before the schema (each also has its PERFD_<TABLE>_<KEY> name).
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "PERFD_IDLE_TIMEOUT_S": ("daemon", "idle_timeout_s"),
    "PERFD_MAX_RSS_MB": ("daemon", "max_rss_mb"),
    "PERFD_MAX_CONNECTIONS": ("daemon", "max_connections"),
    "PERFD_CONNECTION_IDLE_S": ("daemon", "connection_idle_s"),
    "PERFD_MAX_PENDING": ("daemon", "max_pending"),
    "PERFD_MAX_BUFFERED_MB": ("daemon", "max_buffered_mb"),
    "PERFD_PARSE_WORKERS": ("cache", "parse_workers"),
}

# Keys whose values are never shown (header values, anything secret-bearing).
HIDDEN: frozenset[tuple[str, str]] = frozenset({("llm", "headers")})


# `[models.NAME]`: named models, each table with the keys of [llm] (`perfd run -m NAME`, [llm] fallback).
MODELS = "models"
MODEL_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"


def needs_trust(table: str, key: str, value: object) -> bool:
    if table == MODELS:  # a named model needs trust for whatever its keys would need in [llm]
        return isinstance(value, dict) and any(needs_trust("llm", k, v) for k, v in value.items())
    rule = TRUST.get((table, key))
    return rule is not None and rule(value)


def fields(table: str) -> tuple[str, ...]:
    return TABLES[table].__struct_fields__
