"""The one schema of perfd's settings: every table a typed Struct, every key's trust and environment name.

A table here is what `perfd.toml` (or `[tool.perfd]` in pyproject.toml), the
user's `~/.config/perfd/config.toml` and `PERFD_*` variables may set. A key
not here is an error, never silently ignored. Keys that send data or secrets
somewhere, read or write outside the workspace, or spend money need the
user's trust when a workspace file sets them (see perfd.settings.trust).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated

import msgspec

from perfd.paths import PLANS_DIR

_Pos = Annotated[int, msgspec.Meta(ge=1)]
_NonNeg = Annotated[int, msgspec.Meta(ge=0)]
_PosF = Annotated[float, msgspec.Meta(gt=0)]
_NonNegF = Annotated[float, msgspec.Meta(ge=0)]


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
    metrics_addr: str | None = None  # opt-in Prometheus /metrics, e.g. "127.0.0.1:9464"
    max_connections: _Pos = 16384  # open at once (kept under the open-file limit)
    connection_idle_s: _PosF = 300.0
    max_pending: _Pos = 256
    max_buffered_mb: _PosF = 256.0


# Table name -> its Struct. Every field has a default, so one key can be checked on its own.
TABLES: dict[str, type[msgspec.Struct]] = {
    "workspace": WorkspaceSettings,
    "cache": CacheSettings,
    "daemon": DaemonSettings,
}


def _beyond_loopback(value: object) -> bool:
    """metrics_addr needs trust only when it listens beyond loopback (or cannot be read)."""
    if not isinstance(value, str):
        return True
    text = value.strip()
    if text.isdigit() or text.startswith(":"):
        return False  # a bare port listens on loopback
    host = text.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _always(value: object) -> bool:
    return True


# (table, key) -> when a value of it from a workspace file needs the user's trust.
TRUST: dict[tuple[str, str], Callable[[object], bool]] = {
    ("daemon", "metrics_addr"): _beyond_loopback,
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
HIDDEN: frozenset[tuple[str, str]] = frozenset()


def needs_trust(table: str, key: str, value: object) -> bool:
    rule = TRUST.get((table, key))
    return rule is not None and rule(value)


def fields(table: str) -> tuple[str, ...]:
    return TABLES[table].__struct_fields__
