"""`perfd config` (the settings in force and where each comes from) and `perfd trust` (allow a workspace's).

Both are answered in the caller's process: they show and record what this
user's files and environment give, and `perfd trust` writes into the user's
own state. Secret-bearing values are never printed (schema.HIDDEN).
"""

from __future__ import annotations

import json
import os

import msgspec

from perfd.safetext import shown
from perfd.settings import schema, trust
from perfd.settings.resolve import DEFAULT, Settings, defaults, load, trust_now
from perfd.settings.sources import workspace_file


class ConfigRow(msgspec.Struct, frozen=True, kw_only=True):
    """One line of `perfd config --json`."""

    table: str
    key: str
    value: object
    source: str  # default, user, workspace or environment
    where: str  # file:line, the variable's name, or "default"
    ignored: str = ""  # why it is not in force ("" when it is)


class ConfigView(msgspec.Struct, frozen=True, kw_only=True):
    """`perfd config --json`: every setting a source gave (and with --all each default), trust, files read."""

    root: str | None
    settings: list[ConfigRow]
    waiting_for_trust: list[str]
    trusted: bool
    files: list[str]


def _value(table: str, key: str, value: object) -> object:
    if table == schema.MODELS and isinstance(value, dict):  # a named model's keys are [llm]'s
        return {k: _value("llm", k, v) for k, v in value.items()}
    return "(hidden)" if (table, key) in schema.HIDDEN else value


def _toml(value: object) -> str:
    """A value as TOML would write it (json's forms are TOML's for strings, numbers, booleans, arrays)."""
    if value is None:
        return "(none)"
    return json.dumps(value, ensure_ascii=False, default=str)


def rows(settings: Settings, *, with_defaults: bool) -> list[ConfigRow]:
    out = [ConfigRow(table=e.table, key=e.key, value=_value(e.table, e.key, e.value), source=e.origin.source,
                     where=e.origin.where, ignored=e.ignored) for e in settings.entries]
    if with_defaults:
        set_here = {(e.table, e.key) for e in settings.entries if not e.ignored}
        for table in schema.TABLES:
            values = defaults(table)
            for key in schema.fields(table):
                if (table, key) not in set_here and key in values:
                    out.append(ConfigRow(table=table, key=key, value=_value(table, key, values[key]),
                                         source=DEFAULT, where="default"))
    order = {t: i for i, t in enumerate(schema.TABLES)}
    fields = {t: {k: i for i, k in enumerate(schema.fields(t))} for t in schema.TABLES}
    return sorted(out, key=lambda r: (order.get(r.table, len(order)), fields.get(r.table, {}).get(r.key, 0), r.key,
                                      bool(r.ignored)))


def render_config(settings: Settings, *, with_defaults: bool, as_json: bool) -> str:
    table = rows(settings, with_defaults=with_defaults)
    if as_json:
        view = ConfigView(root=settings.root, settings=table, waiting_for_trust=list(settings.waiting),
                          trusted=settings.trusted, files=list(settings.files))
        return msgspec.json.encode(view).decode() + "\n"
    if not table:
        return "every setting has its default (perfd config --all lists them)\n"
    def origin(r: ConfigRow) -> str:
        return r.source if r.source == DEFAULT else f"{r.source}:{r.where}"

    width = max(len(origin(r)) for r in table)
    lines = []
    for r in table:
        line = f"{shown(origin(r)):<{width}}  [{r.table}] {r.key} = {shown(_toml(r.value))}"
        if r.ignored:
            line += f"  (ignored: {r.ignored})"
        lines.append(line)
    if settings.waiting:
        lines.append("perfd: " + settings.notice())
    return "\n".join(lines) + "\n"


def render_trust_show(root: str) -> str:
    """`perfd trust --show`: what the workspace file sets that needs trust, and whether it has it."""
    settings = load(root)
    path = workspace_file(settings.root or root)
    needing = [e for e in settings.entries
               if e.origin.source == "workspace" and schema.needs_trust(e.table, e.key, e.value)]
    if not needing:
        where = shown(path) if path else "no settings file"
        return f"{where}: nothing here needs trust (plan-format settings never do)\n"
    state = "trusted" if settings.trusted else (
        "changed since you trusted it" if trust.read(settings.root or root) is not None else "not trusted")
    lines = [f"{shown(settings.root or root)}: {state}; `perfd trust` would allow:"]
    for e in needing:
        lines.append(f"  {shown(e.origin.where)}  [{e.table}] {e.key} = {shown(_toml(_value(e.table, e.key, e.value)))}")
    return "\n".join(lines) + "\n"


def run_trust(root: str, *, show: bool, revoke: bool) -> str:
    if show:
        return render_trust_show(root)
    if revoke:
        had = trust.revoke(os.path.realpath(root))
        return ("revoked: the workspace's settings that need trust are ignored again\n" if had
                else "nothing to revoke: this workspace was not trusted\n")
    _, names = trust_now(root)
    if not names:
        return "recorded; the workspace's settings file sets nothing that needs trust today\n"
    return f"trusted {len(names)} setting(s) of this workspace: {', '.join(names)}; any change to them revokes it\n"
