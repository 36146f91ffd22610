"""`[llm]` settings: one typed, validated LLMConfig from file + environment.

The file table comes from `perfd.config.table(config, "llm")`; every key can
be overridden by `PERFD_LLM_<KEY>` in the environment (the environment wins,
so a CI job or a shell can point perfd at another server without editing
files). The API key itself is never a setting: `api_key_env` names the
variable that holds it and the client reads that variable at call time.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import msgspec

from perfd.settings.schema import LLMConfig as LLMConfig  # the [llm] table's schema (moved there)

from .errors import LLMConfigError

ENV_PREFIX = "PERFD_LLM_"
CACHE_FILE = "llm-cache.sqlite3"  # in perfd.paths.state_dir() unless cache_path is set
HISTORY_FILE = "llm-history.sqlite3"  # likewise, unless history_path is set

HOW_TO_CONFIGURE = """\
No LLM provider is configured. Add an [llm] table to perfd.toml (or
[tool.perfd.llm] to pyproject.toml), for example:

    [llm]
    base_url = "https://api.openai.com/v1"    # any OpenAI-compatible server:
                                               # vLLM, llama.cpp, Ollama
                                               # (http://localhost:11434/v1), LiteLLM
    model = "gpt-4o-mini"
    api_key_env = "OPENAI_API_KEY"            # NAME of the variable holding the key;
                                               # omit for local servers without auth
    rpm = 500                                  # optional requests/minute limit
    tpm = 200000                               # optional tokens/minute limit

or set the same keys in the environment: PERFD_LLM_BASE_URL, PERFD_LLM_MODEL,
PERFD_LLM_API_KEY_ENV, PERFD_LLM_RPM, ... (the environment wins over the file).
"""

FIELDS: tuple[str, ...] = LLMConfig.__struct_fields__
_PATH = re.compile(r" - at `\$\.(\w+)`")


def environment_table(table: str, env: Mapping[str, str], source: dict[str, str]) -> dict[str, object]:
    """[table]'s values from PERFD_<TABLE>_* in `env`, read by perfd.settings (LLMConfigError for a bad one);
    each variable seen, set or emptied, is named in `source`."""
    if not env:
        return {}
    from perfd.settings.resolve import ENV_PREFIX as PREFIX
    from perfd.settings.resolve import read_environment
    from perfd.settings.sources import SettingsError

    prefix = f"{PREFIX}{table.upper()}_"
    mine = {name: value for name, value in env.items() if name.startswith(prefix)}
    try:
        values, unset = read_environment(mine)
    except SettingsError as exc:
        raise LLMConfigError(str(exc)) from None
    for t, key in unset:
        source[key] = f"{prefix}{key.upper()}"
    out = {key: raw.value for key, raw in values.get(table, {}).items()}
    source.update({key: raw.where for key, raw in values.get(table, {}).items()})
    return out


def load_llm_config(config: Mapping[str, object], env: Mapping[str, str] | None = None) -> LLMConfig | None:
    """The provider configured by the `[llm]` table `config` and PERFD_LLM_* in `env`.

    Returns None when neither names a provider (no base_url and no model);
    callers then show HOW_TO_CONFIGURE. Raises LLMConfigError naming the key,
    where it came from and what is wrong for anything unusable.
    """
    values: dict[str, object] = {}
    source: dict[str, str] = {}
    for key, value in config.items():
        if key not in FIELDS:
            raise LLMConfigError(_unknown(f"[llm] {key}", key))
        values[key] = value
        source[key] = f"[llm] {key}"

    # PERFD_LLM_* as the settings layer reads them (leniently converted, each error naming the
    # variable); product callers pass the settings in force, the environment merged in already.
    env_values = environment_table("llm", env or {}, source)
    for key in source:
        if source[key].startswith(ENV_PREFIX):
            values.pop(key, None)  # an empty variable unsets the file's value

    merged = values | env_values
    if not merged.get("base_url") and not merged.get("model"):
        return None
    try:
        cfg = msgspec.convert(merged, LLMConfig, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _PATH.search(message)
        key = match.group(1) if match else ""
        if message.startswith("Object missing required field"):
            key = message.split("`")[1]
            raise LLMConfigError(
                f"[llm] {key} is required once an LLM provider is configured: set {key} in "
                f"the [llm] table or {ENV_PREFIX}{key.upper()} in the environment"
            ) from None
        if key:
            raise LLMConfigError(f"invalid [llm] {key} = {merged.get(key)!r}: {_PATH.sub('', message)}") from None
        raise LLMConfigError(f"invalid [llm] table: {message}") from None
    cfg = with_listed_prices(cfg)
    _check(cfg, source)
    return cfg


def with_listed_prices(cfg: LLMConfig) -> LLMConfig:
    """`cfg` with the price table's prices where the settings set none (perfd.llm.prices)."""
    if cfg.priced:
        return cfg
    from .prices import price_of

    listed = price_of(cfg.model if cfg.provider != "azure" else cfg.model)
    if listed is None:
        return cfg
    per_1k = {"price_prompt_per_1k": listed.prompt / 1000.0, "price_completion_per_1k": listed.completion / 1000.0}
    if cfg.price_cache_read_per_1k is None and listed.cache_read is not None:
        per_1k["price_cache_read_per_1k"] = listed.cache_read / 1000.0
    if cfg.price_cache_write_per_1k is None and listed.cache_write is not None:
        per_1k["price_cache_write_per_1k"] = listed.cache_write / 1000.0
    return msgspec.structs.replace(cfg, **per_1k)


def _check(cfg: LLMConfig, source: Mapping[str, str]) -> None:
    def where(key: str) -> str:
        return source.get(key, f"[llm] {key}")

    parts = urlsplit(cfg.base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LLMConfigError(
            f"invalid {where('base_url')} = {cfg.base_url!r}: expected an http(s) URL such as "
            "'https://api.openai.com/v1' or 'http://localhost:8000/v1'"
        )
    if parts.query or parts.fragment:
        raise LLMConfigError(f"invalid {where('base_url')}: no query string or fragment allowed")
    if cfg.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cfg.api_key_env):
        raise LLMConfigError(
            f"invalid {where('api_key_env')}: it must be the NAME of an environment variable "
            "(e.g. 'OPENAI_API_KEY'), never the key itself"
        )
    if (cfg.max_keepalive_connections or 0) > cfg.max_connections:
        raise LLMConfigError(
            f"invalid {where('max_keepalive_connections')}: larger than max_connections "
            f"({cfg.max_keepalive_connections} > {cfg.max_connections})"
        )
    if cfg.retry_base_s > cfg.retry_max_s:
        raise LLMConfigError(f"invalid {where('retry_base_s')}: larger than retry_max_s")
    if cfg.has_budget and not cfg.priced:
        raise LLMConfigError(
            f"a budget (budget_usd_per_day / budget_usd_per_plan_per_day) needs the model's prices, and "
            f"none is known for {cfg.model!r}: set [llm] price_prompt_per_1k and price_completion_per_1k"
        )
    for table, key in (("headers", "headers"), ("headers_env", "headers_env")):
        for header, value in getattr(cfg, key).items():
            if not _TOKEN.fullmatch(header) or any(c in value for c in "\r\n\0"):
                raise LLMConfigError(f"invalid {where(key)}: {header!r} is not a header name, or its value "
                                     "holds a line break")
    for header in cfg.headers:
        if header.lower() in _SECRET_HEADERS:
            raise LLMConfigError(
                f"invalid {where('headers')}: {header} carries a secret; name the variable that holds it in "
                "[llm] api_key_env (or headers_env), never the value itself")
    for name in cfg.headers_env.values():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise LLMConfigError(f"invalid {where('headers_env')}: {name!r} must be the NAME of an environment "
                                 "variable, never the value itself")
    if cfg.provider == "azure" and "/openai/deployments/" in cfg.base_url:
        raise LLMConfigError(f"invalid {where('base_url')}: with provider = \"azure\" give the resource's URL "
                             "(https://NAME.openai.azure.com) and the deployment in [llm] deployment")
    for key in ("timeout_s", "total_timeout_s", "window_s", "cache_ttl_s", "budget_usd_per_day", "budget_usd_per_plan_per_day"):
        value = getattr(cfg, key)
        if value is not None and not math.isfinite(value):
            raise LLMConfigError(f"invalid {where(key)}: must be a finite number")


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"})


def _unknown(where: str, key: str) -> str:
    if key in ("api_key", "key", "token"):
        return (f"{where} is not a setting: perfd never takes the API key itself. Put the key in "
                "an environment variable (e.g. OPENAI_API_KEY) and set api_key_env to that NAME.")
    close = difflib.get_close_matches(key, FIELDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown LLM setting {where}{hint}; known settings: {', '.join(FIELDS)}"
