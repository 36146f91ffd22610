"""`perfd init`: a commented perfd.toml that lists every setting with its default.

Every setting is written commented out, so the file changes nothing until a
line is uncommented: perfd's defaults stay perfd's, and the file documents
them. Every table is built from the schema's own fields and defaults
(perfd.settings.schema), so it cannot drift from what perfd accepts (a test uncomments every line and
loads the result). Written atomically; an existing file is never replaced
without --force.
"""

from __future__ import annotations

import os

import msgspec

from perfd.engine.errors import UserError

FILE_NAME = "perfd.toml"

# One short line per [llm] setting; a field missing here is still written (with no comment).
LLM_NOTES: dict[str, str] = {
    "base_url": "the server (required to use a model); Anthropic: https://api.anthropic.com",
    "provider": "\"openai\" (any compatible server), \"anthropic\" (Messages API), \"azure\"",
    "api_version": "Azure's api-version; Anthropic's anthropic-version (unset: a current one)",
    "deployment": "Azure: the deployment (unset: model)",
    "headers": "extra request headers with plain values (no secrets here)",
    "headers_env": "header -> the NAME of the variable holding its value",
    "fallback": "[models.NAME] tables that serve a call this model failed, in order",
    "price_cache_read_per_1k": "unset: the price table's, else the prompt price",
    "price_cache_write_per_1k": "unset: the price table's, else the prompt price",
    "model": "the model name the server knows (required)",
    "api_key_env": "the NAME of the variable holding the key; the key itself is never stored",
    "rpm": "requests per window (per minute); unset: no client-side limit",
    "tpm": "tokens per window; unset: no client-side limit",
    "window_s": "the rate window, seconds",
    "completion_tokens_estimate": "tokens reserved against tpm when a call sets no max_tokens",
    "context_tokens": "the prompt run sends, files inlined (UTF-8 bytes / 4); the rest is cut",
    "max_connections": "pooled connections to the server",
    "max_keepalive_connections": "idle connections kept (unset: max_connections)",
    "keepalive_expiry_s": "an idle connection is closed after this long",
    "max_concurrency": "requests in flight at once (unset: max_connections)",
    "timeout_s": "per attempt; on a stream, each wait for data",
    "connect_timeout_s": "",
    "max_retries": "retries of a failed attempt, with backoff",
    "retry_base_s": "",
    "retry_max_s": "",
    "max_retry_after_s": "a longer Retry-After fails the call instead of waiting",
    "breaker_failures": "failures in a row that open the circuit breaker",
    "breaker_cooldown_s": "",
    "temperature": "0 keeps answers reproducible and cacheable",
    "max_tokens": "unset: the server's default",
    "stream_usage": "ask streaming servers for a final usage chunk",
    "cache": "the response cache",
    "cache_temperature_above_zero": "cache answers sampled above temperature 0 too",
    "cache_ttl_s": "",
    "cache_memory_entries": "",
    "cache_max_entries": "",
    "cache_max_answer_bytes": "larger answers are not cached; a larger value read back is a miss",
    "cache_path": "unset: the user's state folder; relative: from the workspace root",
    "history": "record every call (no prompts, no answers, no keys) for perfd stats --history",
    "history_max_rows": "",
    "history_path": "unset: the user's state folder; relative: from the workspace root",
    "price_prompt_per_1k": "currency per 1000 prompt tokens: cost and cost saved in stats",
    "price_completion_per_1k": "currency per 1000 completion tokens",
    "budget_usd_per_day": "a call that would go over is refused before it is sent (needs prices)",
    "budget_usd_per_plan_per_day": "the same, per plan",
}

# One short line per setting of the tables above [llm]; a field missing here is still written.
CACHE_NOTES: dict[str, str] = {
    "capacity": "parsed files and folder listings kept (LRU)",
    "ttl_s": "an entry is re-read after this long even if unchanged",
    "parse_workers": "processes for a cold parse of many plans; 0: one per core, 1: in-process only",
}
WORKSPACE_NOTES: dict[str, str] = {"plans_dir": "where the plans live, from the workspace root"}
DAEMON_NOTES: dict[str, str] = {
    "idle_timeout_s": "the daemon stops after this long unused (0: never)",
    "max_rss_mb": "the daemon stops above this memory, in MB (0: no cap)",
    "metrics_addr": "serve /metrics for Prometheus here (beyond loopback: after perfd trust)",
    "max_connections": "open at once (kept under the open-file limit)",
    "connection_idle_s": "a connection with nothing in flight is closed after this long",
    "max_pending": "requests in flight on one connection",
    "max_buffered_mb": "incomplete frames held, all connections together",
}

# [team]: daemons of one model account share limits, cache, breaker and budget through Redis.
TEAM_NOTES: dict[str, str] = {
    "redis_url": "redis://, rediss:// or unix://; no password in it (see redis_password_env)",
    "redis_password_env": "the NAME of the variable holding Redis's password; never stored",
    "namespace": "key prefix; unset: derived from [llm] base_url and model",
    "fail": "\"open\": local limits while Redis is down; \"closed\": refuse model calls",
    "timeout_s": "one Redis operation may take this long",
    "retry_s": "after a failure, how long to run on the fallback before trying Redis again",
    "cache_ttl_s": "shared answers live this long in Redis",
    "compress_min_bytes": "larger answers are stored compressed",
}

# Settings with no default (unset) are shown with an example value, so that uncommenting gives valid TOML.
_EXAMPLES: dict[str, object] = {
    "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY",
    "rpm": 500, "tpm": 200000, "max_keepalive_connections": 8, "max_concurrency": 8, "max_tokens": 4096,
    "cache_path": ".perfd/llm-cache.sqlite3", "history_path": ".perfd/llm-history.sqlite3",
    "price_prompt_per_1k": 0.00015, "price_completion_per_1k": 0.0006, "price_cache_read_per_1k": 0.000075,
    "price_cache_write_per_1k": 0.00015, "api_version": "2024-10-21", "deployment": "my-deployment",
    "headers": {"X-Team": "perf"}, "headers_env": {"X-Gateway-Token": "GATEWAY_TOKEN"},
    "budget_usd_per_day": 20.0, "budget_usd_per_plan_per_day": 5.0,
    "redis_url": "redis://127.0.0.1:6379/0", "redis_password_env": "PERFD_REDIS_PASSWORD", "namespace": "my-team",
    "parse_workers": 0, "metrics_addr": "127.0.0.1:9464",
}


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _line(key: str, value: object, note: str) -> str:
    text = f"# {key} = {_toml(value)}"
    return f"{text:<44} # {note}" if note else text


def _struct_lines(kind: type[msgspec.Struct], notes: dict[str, str]) -> list[str]:
    lines = []
    for field in msgspec.structs.fields(kind):
        note = notes.get(field.name, "")
        if field.default_factory is not msgspec.NODEFAULT:  # an empty table or list
            lines.append(_line(field.name, _EXAMPLES.get(field.name, field.default_factory()), note))
        elif field.default is msgspec.NODEFAULT:
            lines.append(_line(field.name, _EXAMPLES[field.name], note))
        elif field.default is None:
            unset = "default: unset" + (f"; {note}" if note else "")
            lines.append(_line(field.name, _EXAMPLES.get(field.name, ""), unset))
        else:
            lines.append(_line(field.name, field.default, note))
    return lines


def template() -> str:
    """The commented perfd.toml: every table of the one schema (perfd.settings.schema), every field with its
    default (or an example where it has none)."""
    from perfd.settings.schema import CacheSettings, DaemonSettings, LLMConfig, TeamConfig, WorkspaceSettings

    return "\n".join([
        "# perfd settings for this workspace. Every line is commented out: the value shown is",
        "# the default. Uncomment a line to change it. PERFD_<TABLE>_<KEY> variables override it, and",
        "# settings that send data, read outside the workspace or spend money need `perfd trust`.",
        "",
        "[cache]",
        *_struct_lines(CacheSettings, CACHE_NOTES),
        "",
        "[workspace]",
        *_struct_lines(WorkspaceSettings, WORKSPACE_NOTES),
        "",
        "[daemon]",
        *_struct_lines(DaemonSettings, DAEMON_NOTES),
        "",
        "# A model for `perfd run`: uncomment the table and at least base_url and model.",
        "# [llm]",
        *_struct_lines(LLMConfig, LLM_NOTES),
        "",
        "# A team sharing one model account: one rate limit, answer cache, breaker and budget",
        "# through Redis (PERFD_TEAM_<KEY> variables override [team]).",
        "# [team]",
        *_struct_lines(TeamConfig, TEAM_NOTES),
        "",
    ])


def init(root: str, *, force: bool = False) -> str:
    """Write ROOT/perfd.toml atomically and return its path; a UserError when it exists (without `force`)
    or cannot be written."""
    from perfd.fsutil import FileExists, write_atomic

    path = os.path.join(root, FILE_NAME)
    try:
        write_atomic(path, template(), force=force)
    except FileExists:
        raise UserError(f"{path} exists; not overwritten", code="file-exists",
                        hint="perfd init --force replaces it; perfd init --stdout prints the template") from None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}", code="write-failed") from None
    return path
