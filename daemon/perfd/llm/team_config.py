"""`[team]` settings: one Redis shared by every daemon of a team.

With a `[team]` table, `[llm] rpm`, `tpm` and `budget_usd_per_day` are the
team's limits, held in Redis for every daemon that uses the same Redis and
namespace. Every key can be overridden by `PERFD_TEAM_<KEY>` (the environment
wins). The Redis password is never a setting: `redis_password_env` names the
variable that holds it, and it is read when the connection is made.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import msgspec

from perfd.settings.schema import TeamConfig as TeamConfig  # the [team] table's schema (moved there)

from .config import environment_table
from .errors import LLMConfigError

ENV_PREFIX = "PERFD_TEAM_"

_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


FIELDS: tuple[str, ...] = TeamConfig.__struct_fields__
_PATH = re.compile(r" - at `\$\.(\w+)`")


def load_team_config(config: Mapping[str, object], env: Mapping[str, str] | None = None) -> TeamConfig | None:
    """The `[team]` table `config` with PERFD_TEAM_* from `env` over it; None when no redis_url is set."""
    values: dict[str, object] = {}
    for key, value in config.items():
        if key not in FIELDS:
            raise LLMConfigError(_unknown(f"[team] {key}", key))
        values[key] = value
    seen: dict[str, str] = {}
    from_env = environment_table("team", env or {}, seen)
    for key in seen:
        values.pop(key, None)  # an empty variable unsets the file's value
    values.update(from_env)
    if not values.get("redis_url"):
        if values:
            raise LLMConfigError("[team] redis_url is required once a [team] table or PERFD_TEAM_* is set")
        return None
    try:
        cfg = msgspec.convert(values, TeamConfig, strict=True)
    except msgspec.ValidationError as exc:
        match = _PATH.search(str(exc))
        key = match.group(1) if match else ""
        raise LLMConfigError(f"invalid [team] {key or 'table'}: {_PATH.sub('', str(exc))}") from None
    _check(cfg)
    return cfg


def _check(cfg: TeamConfig) -> None:
    parts = urlsplit(cfg.redis_url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise LLMConfigError(
            f"invalid [team] redis_url {redact_url(cfg.redis_url)!r}: expected redis://host:port/db, "
            "rediss://host:port/db or unix:///path/to/redis.sock"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise LLMConfigError(f"invalid [team] redis_url {redact_url(cfg.redis_url)!r}: no host")
    if parts.scheme == "unix" and not parts.path:
        raise LLMConfigError(f"invalid [team] redis_url {redact_url(cfg.redis_url)!r}: no socket path")
    if parts.password or any(k.lower() in ("password", "pass", "auth") for k, _ in parse_qsl(parts.query)):
        raise LLMConfigError(
            "[team] redis_url holds a password: put it in an environment variable and set "
            "redis_password_env to that NAME, so it is never stored in perfd.toml"
        )
    if cfg.redis_password_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cfg.redis_password_env):
        raise LLMConfigError("invalid [team] redis_password_env: it must be the NAME of an environment variable")
    if cfg.namespace is not None and not _NAMESPACE.fullmatch(cfg.namespace):
        raise LLMConfigError("invalid [team] namespace: 1 to 64 of A-Z a-z 0-9 _ . : -")


def namespace_for(team: TeamConfig, *, base_url: str, model: str) -> str:
    """The key prefix daemons of one account share: the configured one, else derived from URL and model."""
    if team.namespace:
        return team.namespace
    digest = hashlib.sha256(f"{base_url.rstrip('/')}\n{model}".encode()).hexdigest()
    return digest[:16]


def redact_url(url: str) -> str:
    """`url` without any user or password, for messages, logs and stats."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix://{parts.path}"
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "(unparseable URL)"


def _unknown(where: str, key: str) -> str:
    if key in ("password", "redis_password"):
        return (f"{where} is not a setting: perfd never takes the Redis password itself. Put it in an "
                "environment variable and set redis_password_env to that NAME.")
    close = difflib.get_close_matches(key, FIELDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown team setting {where}{hint}; known settings: {', '.join(FIELDS)}"
