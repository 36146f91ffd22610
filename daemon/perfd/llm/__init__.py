"""perfd.llm: the model-call path of perfd.

Takes chat messages, returns text. Knows nothing of plans, the engine or the
daemon's transports: callers pass labels (plan, achievement, state) for the
history and get typed results back.

    from perfd.llm import HOW_TO_CONFIGURE, ChatOptions, LLMClient, workspace_llm_config

    config = workspace_llm_config(root)  # the [llm] settings in force (perfd.settings), trust applied
    if config is None:
        print(HOW_TO_CONFIGURE)
    async with LLMClient(config) as llm:
        answer = await llm.complete([{"role": "user", "content": "hi"}], ChatOptions(plan="PLAN.md"))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING


# Names load with their module on first use (PEP 562): the daemon imports
# perfd.llm.stats for its stats types at start, and must not pay for httpx
# (about 140 ms) until a model is actually called. Each module is imported by
# a plain statement, not by a name built at run time, so the import graph (and
# its test) sees every edge; no module of this package imports the package
# itself, so these imports close no loop.
def _breaker() -> ModuleType:
    from . import breaker
    return breaker


def _cache() -> ModuleType:
    from . import cache
    return cache


def _client() -> ModuleType:
    from . import client
    return client


def _config() -> ModuleType:
    from . import config
    return config


def _errors() -> ModuleType:
    from . import errors
    return errors


def _history() -> ModuleType:
    from . import history
    return history


def _parallel() -> ModuleType:
    from . import parallel
    return parallel


def _ratelimit() -> ModuleType:
    from . import ratelimit
    return ratelimit


def _stats() -> ModuleType:
    from . import stats
    return stats


def _stream() -> ModuleType:
    from . import stream
    return stream


def _team_config() -> ModuleType:
    from . import team_config
    return team_config


def _types() -> ModuleType:
    from . import types
    return types


_LAZY: dict[str, Callable[[], ModuleType]] = {
    "BreakerState": _breaker, "CircuitBreaker": _breaker,
    "CachedResponse": _cache, "ResponseCache": _cache, "cache_key": _cache,
    "LLMClient": _client,
    "CACHE_FILE": _config, "ENV_PREFIX": _config, "HISTORY_FILE": _config, "HOW_TO_CONFIGURE": _config,
    "LLMConfig": _config, "load_llm_config": _config,
    "LLMCircuitOpen": _errors, "LLMConfigError": _errors, "LLMConnectionError": _errors, "LLMError": _errors,
    "LLMHTTPError": _errors, "LLMRequestError": _errors, "LLMRequestTooLarge": _errors,
    "LLMResponseError": _errors, "LLMStreamInterrupted": _errors, "LLMTimeout": _errors,
    "LLMBudgetExceeded": _errors, "LLMTeamUnavailable": _errors,
    "CallRecord": _history, "Filter": _history, "History": _history, "Summary": _history,
    "JobOutcome": _parallel, "PromptJob": _parallel, "run_jobs": _parallel,
    "RateLimiter": _ratelimit,
    "LLMStats": _stats, "TeamStats": _stats,
    "TeamConfig": _team_config, "load_team_config": _team_config,
    "ChatStream": _stream,
    "ChatOptions": _types, "Completion": _types, "Message": _types, "Usage": _types,
    "RequestPreview": _types,
}

if TYPE_CHECKING:
    from perfd.settings.resolve import Settings

    from .breaker import BreakerState, CircuitBreaker
    from .cache import CachedResponse, ResponseCache, cache_key
    from .client import LLMClient
    from .config import CACHE_FILE, ENV_PREFIX, HISTORY_FILE, HOW_TO_CONFIGURE, LLMConfig, load_llm_config
    from .errors import (
        LLMCircuitOpen,
        LLMConfigError,
        LLMConnectionError,
        LLMError,
        LLMHTTPError,
        LLMRequestError,
        LLMRequestTooLarge,
        LLMResponseError,
        LLMStreamInterrupted,
        LLMTimeout,
    )
    from .history import CallRecord, Filter, History, Summary
    from .parallel import JobOutcome, PromptJob, run_jobs
    from .ratelimit import RateLimiter
    from .errors import LLMBudgetExceeded, LLMTeamUnavailable
    from .stats import LLMStats, TeamStats
    from .team_config import TeamConfig, load_team_config
    from .stream import ChatStream
    from .types import ChatOptions, Completion, Message, RequestPreview, Usage


def __getattr__(name: str) -> object:
    load = _LAZY.get(name)
    if load is None:
        raise AttributeError(f"module 'perfd.llm' has no attribute {name!r}")
    value: object = getattr(load(), name)
    globals()[name] = value  # once loaded, a plain global
    return value


__all__ = [
    "CACHE_FILE",
    "HISTORY_FILE",
    "ENV_PREFIX",
    "HOW_TO_CONFIGURE",
    "BreakerState",
    "CachedResponse",
    "CallRecord",
    "Filter",
    "ChatOptions",
    "ChatStream",
    "CircuitBreaker",
    "Completion",
    "History",
    "JobOutcome",
    "LLMCircuitOpen",
    "LLMClient",
    "LLMConfig",
    "LLMConfigError",
    "LLMConnectionError",
    "LLMError",
    "LLMHTTPError",
    "LLMRequestError",
    "LLMRequestTooLarge",
    "LLMResponseError",
    "LLMStats",
    "LLMBudgetExceeded",
    "LLMTeamUnavailable",
    "TeamConfig",
    "TeamStats",
    "load_team_config",
    "LLMStreamInterrupted",
    "LLMTimeout",
    "Message",
    "PromptJob",
    "RateLimiter",
    "RequestPreview",
    "ResponseCache",
    "Summary",
    "Usage",
    "cache_key",
    "client_from_workspace",
    "history_path",
    "load_llm_config",
    "open_history",
    "run_jobs",
    "workspace_llm_config",
    "client_from_settings",
]


def client_from_workspace(root: str, *, env: Mapping[str, str] | None = None,
                          model: str | None = None) -> LLMClient | None:
    """The client configured for the workspace at `root`, or None (show HOW_TO_CONFIGURE).

    Settings come from perfd.settings (environment, workspace file, user config), with the
    workspace's trust applied: what waits for `perfd trust` is not used, and the client's
    `notice` says so in one line. Raises LLMConfigError for unusable settings, and when the
    only model configured is one that waits for trust.
    """
    environ = env if env is not None else os.environ
    return client_from_settings(root, _settings(root, environ), env=environ, model=model)


def client_from_settings(root: str, settings: Settings, *, env: Mapping[str, str],
                         model: str | None = None) -> LLMClient | None:
    """The client for `settings` (already loaded, as a daemon keeps them), keys read from `env`; or None.

    `model`: a `[models.NAME]` to use instead of [llm] (`perfd run -m NAME`). The client's fallbacks are
    the clients of its `fallback` names, each without fallbacks of its own (no loops, no surprises)."""
    from .client import LLMClient
    from .errors import LLMConfigError
    from .team_config import load_team_config

    notices = [settings.notice()]
    if model is None:
        config = _llm_config(root, settings)
        if config is None:
            config, said = _standard_variables(root, settings, env)
            notices.append(said)
    else:
        config = _named_config(root, settings, model)
    if config is None:
        return None
    try:
        team = load_team_config(settings.table("team"), {})  # the environment is merged in already
    except LLMConfigError:
        if not settings.waiting_in("team"):
            raise
        team = None  # the team's Redis waits for trust: local limits and cache meanwhile (the notice says so)
    fallbacks = []
    for name in config.fallback:
        other = _named_config(root, settings, name, inherit=config)
        if other is not None:
            fallbacks.append(LLMClient(other, env=env, team=team, name=name))
    return LLMClient(config, env=env, team=team, notice="; ".join(n for n in notices if n), name=model or "",
                     fallbacks=fallbacks)


def workspace_llm_config(root: str, *, env: Mapping[str, str] | None = None) -> LLMConfig | None:
    """The `[llm]` settings in force for the workspace at `root` (see client_from_workspace), or None."""
    return _llm_config(root, _settings(root, env if env is not None else os.environ))


# The standard variables, tried in this order when no model is configured anywhere.
STANDARD_VARIABLES = (
    ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1", "gpt-4o-mini"),
    ("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "https://api.anthropic.com", "claude-sonnet-4-5"),
)
# [llm] keys a named model takes from [llm] when it sets none: the user's limits hold whichever model answers.
_INHERITED = ("budget_usd_per_day", "budget_usd_per_plan_per_day", "cache_path", "history_path")


def _standard_variables(root: str, settings: Settings, env: Mapping[str, str]) -> tuple[LLMConfig | None, str]:
    """No model configured anywhere: the provider the standard variables name (the last source), and one line
    saying so; (None, "") when they name none. [llm] keys other than the provider's (limits, budget) still apply."""
    from .config import load_llm_config

    for provider, key_var, url_var, url, model in STANDARD_VARIABLES:
        key = env.get(key_var, "").strip()
        base = env.get(url_var, "").strip()
        if not key and not (provider == "openai" and base):
            continue
        table = {**settings.table("llm"), "provider": provider, "base_url": base or url,
                 "api_key_env": key_var if key else None}
        table.setdefault("model", model)
        config = load_llm_config(table, {})
        if config is None:
            return None, ""
        named = f"{key_var}{' and ' + url_var if base else ''}"
        return _with_paths(root, settings, config), (
            f"no model configured: using {named} from the environment ({provider}, model {config.model})")
    return None, ""


def _named_config(root: str, settings: Settings, name: str, *, inherit: LLMConfig | None = None) -> LLMConfig:
    """`[models.NAME]` as an LLMConfig (LLMConfigError naming the known names when there is none)."""
    from perfd.settings.schema import MODELS

    from .config import load_llm_config
    from .errors import LLMConfigError

    models = settings.table(MODELS)
    table = models.get(name)
    if not isinstance(table, dict):
        known = ", ".join(sorted(models)) or "none is configured"
        waits = f"; [models] {name} waits for `perfd trust`" if f"[{MODELS}] {name}" in settings.waiting else ""
        raise LLMConfigError(f"no model named {name!r} ([models.{name}]): known: {known}{waits}")
    values = dict(table)
    base = settings.table("llm") if inherit is None else {k: getattr(inherit, k) for k in _INHERITED}
    for key in _INHERITED:
        if key not in values and base.get(key) is not None:
            values[key] = base[key]
    if inherit is not None:
        values.pop("fallback", None)  # a fallback's own list is not followed
    try:
        config = load_llm_config(values, {})
    except LLMConfigError as exc:
        raise LLMConfigError(f"[models.{name}]: {exc}") from None
    if config is None:
        raise LLMConfigError(f"[models.{name}] needs base_url and model")
    return _with_paths(root, settings, config, table=MODELS, key=name)


def _settings(root: str | None, environ: Mapping[str, str]) -> Settings:
    from perfd.settings.resolve import load
    from perfd.settings.sources import SettingsError

    from .errors import LLMConfigError

    try:
        return load(root, environ)
    except SettingsError as exc:
        raise LLMConfigError(str(exc)) from None


def _llm_config(root: str, settings: Settings) -> LLMConfig | None:
    """The [llm] table in force as an LLMConfig; a relative cache_path or history_path is taken from
    the workspace root, so the daemon (whose working folder is /) and an in-process run use the same file."""
    import msgspec

    from perfd.settings.resolve import WORKSPACE

    from .config import load_llm_config
    from .errors import LLMConfigError

    waiting = settings.waiting_in("llm")
    try:
        config = load_llm_config(settings.table("llm"), {})  # the environment is merged in already
    except LLMConfigError:
        if waiting:  # a half-configured model because the rest waits: say what to run, not what is missing
            raise LLMConfigError(settings.notice()) from None
        raise
    if config is None:
        if waiting:
            raise LLMConfigError(settings.notice())
        return None
    return _with_paths(root, settings, config)


def _with_paths(root: str, settings: Settings, config: LLMConfig, *, table: str = "llm",
                key: str | None = None) -> LLMConfig:
    """`config` with relative file paths taken from the workspace root; a workspace's own paths checked."""
    import msgspec

    from perfd.settings.resolve import WORKSPACE

    fixed = {name: _in_root(root, value) for name in ("cache_path", "history_path")
             if (value := getattr(config, name)) and not os.path.isabs(value)}
    for name in ("cache_path", "history_path"):
        value = fixed.get(name) or getattr(config, name)
        if value and settings.origin(table, name if key is None else key).source == WORKSPACE:
            _check_file_setting(root, name, value)
    return msgspec.structs.replace(config, **fixed) if fixed else config


def _in_root(root: str | None, path: str) -> str:
    """A configured path: absolute as it is, relative from the workspace root."""
    return path if root is None else os.path.join(root, path)  # join keeps an absolute path as it is


def _check_file_setting(root: str | None, key: str, path: str) -> None:
    """A database path set in the workspace's own perfd.toml must stay inside the workspace.

    perfd.toml comes with the repository, and perfd writes these files (and sets
    a damaged one aside, by renaming it): a cloned repository must not point them
    at a file of the user's. PERFD_LLM_CACHE_PATH / PERFD_LLM_HISTORY_PATH, which
    only the user sets, may point anywhere.
    """
    if root is None:
        return
    real_root = os.path.realpath(root)
    real = os.path.realpath(_in_root(root, path))
    if not real.startswith(real_root + os.sep):
        from .config import ENV_PREFIX
        from .errors import LLMConfigError

        raise LLMConfigError(f"[llm] {key} in the workspace's configuration leads outside the workspace ({path}); "
                             f"set {ENV_PREFIX}{key.upper()} to use a file elsewhere")


def history_path(root: str | None, *, env: Mapping[str, str] | None = None) -> str:
    """The call history file of the workspace at `root`, as `perfd run` would record to it.

    `[llm] history_path` in force (PERFD_LLM_HISTORY_PATH, the user's config, or the workspace's
    once trusted; relative to the root), else the state folder's file. Only that setting is
    used: the history can be shown where no model is configured. Raises LLMConfigError for
    unusable settings.
    """
    from perfd.paths import state_dir
    from perfd.settings.resolve import WORKSPACE

    from .config import HISTORY_FILE

    settings = _settings(root, env if env is not None else os.environ)
    value = settings.table("llm").get("history_path")
    if isinstance(value, str) and value:
        if settings.origin("llm", "history_path").source == WORKSPACE:
            _check_file_setting(root, "history_path", value)
        return _in_root(root, value)
    return os.path.join(state_dir(), HISTORY_FILE)


def open_history(path: str | None = None) -> History:
    """The call history file for read-only queries (`perfd stats --history`): opened for reading only."""
    from .config import HISTORY_FILE
    from .history import History

    if path is None:
        from perfd.paths import state_dir

        path = os.path.join(state_dir(), HISTORY_FILE)
    return History(path, read_only=True)
