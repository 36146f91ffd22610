"""The settings in force: three sources merged key by key, checked against the schema, trust applied.

Precedence, highest first: the environment (`PERFD_*`), the workspace file
(`perfd.toml`, `.perfd/perfd.toml`, or `[tool.perfd]` in pyproject.toml),
the user's config (`$XDG_CONFIG_HOME/perfd/config.toml`), the defaults. A
workspace value that needs trust (schema.TRUST) is used only once the user
ran `perfd trust` for the workspace's current values; until then it is
listed as waiting, and the next source down is used. Every error is one
SettingsError line naming the file and line (or variable), the setting and
a did-you-mean; nothing here prints.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import msgspec

from perfd.suggest import closest

from . import schema, trust
from .schema import CacheSettings, DaemonSettings, WorkspaceSettings
from .sources import Raw, SettingsError, SourceFile, read_file, user_file, workspace_file

ENV_PREFIX = "PERFD_"
# Workspace roots the user's own environment trusts (os.pathsep-separated; a root under one counts),
# as mise's MISE_TRUSTED_CONFIG_PATHS: a CI job trusts its checkout without a record.
TRUSTED_PATHS_ENV = "PERFD_TRUSTED_PATHS"
DEFAULT, USER, WORKSPACE, ENVIRONMENT = "default", "user", "workspace", "environment"
_PATH = re.compile(r" - at `\$\.(\w+)`")


class Origin(msgspec.Struct, frozen=True):
    """Where a value in force came from: the source, and the file:line or variable."""

    source: str  # DEFAULT, USER, WORKSPACE or ENVIRONMENT
    where: str


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One value a source set, in force or not (`ignored` says why not)."""

    table: str
    key: str
    value: object
    origin: Origin
    ignored: str = ""  # "waits for `perfd trust`", "overridden by ..."

    @property
    def name(self) -> str:
        return f"[{self.table}] {self.key}"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every setting in force for one workspace, and where each came from."""

    root: str | None
    workspace: WorkspaceSettings
    cache: CacheSettings
    daemon: DaemonSettings
    values: dict[str, dict[str, object]]  # table -> key -> value in force, for every value a source set
    entries: tuple[Entry, ...]  # every value a source set, in force or ignored
    waiting: tuple[str, ...]  # "[table] key" of workspace values that wait for the user's trust
    digest: str  # of the workspace's trust-needing values ("" when it sets none)
    trusted: bool  # those values are trusted (True when there are none)
    files: tuple[str, ...]  # the settings files read

    def fingerprint(self, *tables: str) -> str:
        """A short digest of the values in force in `tables` (the default: every table): equal settings,
        equal digest. `perfd daemon status` shows it; the daemon compares it to know what changed."""
        import hashlib
        import json

        names = tables or (*schema.TABLES, schema.MODELS)
        text = json.dumps({t: self.values.get(t, {}) for t in names}, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def table(self, name: str) -> dict[str, object]:
        """The values in force that a source set in table `name` (defaults left to its Struct)."""
        return dict(self.values.get(name, {}))

    def waiting_in(self, table: str) -> list[str]:
        return [w for w in self.waiting if w.startswith(f"[{table}] ")]

    def origin(self, table: str, key: str) -> Origin:
        for e in self.entries:
            if e.table == table and e.key == key and not e.ignored:
                return e.origin
        return Origin(DEFAULT, "default")

    def notice(self) -> str:
        """One line when workspace settings wait for trust, else ""."""
        if not self.waiting:
            return ""
        names = ", ".join(self.waiting)
        return (f"ignoring {names} from the workspace's settings until you trust them: "
                "run `perfd trust` (`perfd trust --show` lists them)")


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = closest(word, choices)
    return f" (did you mean {close}?)" if close else ""


def _all_keys() -> list[str]:
    return [f"[{t}] {k}" for t in schema.TABLES for k in schema.fields(t)]


def _type_error(name: str, value: object, exc: msgspec.ValidationError) -> str:
    text = _PATH.sub("", str(exc))
    if text.startswith("Expected `"):
        text = "expected " + text[len("Expected "):].replace("`", "")
    return f"{name} = {value!r}: {text}"


def _convert_one(table: str, key: str, value: object, *, strict: bool) -> object:
    """`value` as the schema's type of [table] key (ValidationError when it is not one)."""
    kind = schema.TABLES[table]
    others = {f.name: "x" for f in msgspec.structs.fields(kind) if f.required and f.name != key}
    one = msgspec.convert({**others, key: value}, kind, strict=strict)
    return getattr(one, key)


def defaults(table: str) -> dict[str, object]:
    """Each key of [table] that has a default, with it."""
    return {f.name: f.default for f in msgspec.structs.fields(schema.TABLES[table])
            if f.default is not msgspec.NODEFAULT}


def check_file(src: SourceFile) -> dict[str, dict[str, Raw]]:
    """A file's tables with each value converted to its type; SettingsError for the first thing wrong."""
    for key, raw in src.stray.items():
        guess = _did_you_mean(key, [k.split("] ")[1] for k in _all_keys()] + list(schema.TABLES))
        where_hint = next((f" (did you mean [{t}] {key}?)" for t in schema.TABLES if key in schema.fields(t)), guess)
        raise SettingsError(f"{raw.where}: {key} is not a setting at the top level{where_hint}; "
                            "settings live in tables such as [daemon] or [llm]")
    out: dict[str, dict[str, Raw]] = {}
    for table, values in src.tables.items():
        if table == schema.MODELS:
            out[table] = {name: Raw(_check_model(name, raw), raw.where) for name, raw in values.items()}
            continue
        if table not in schema.TABLES:
            close = closest(table, schema.TABLES)
            hint = f" (did you mean [{close}]?)" if close else ""
            raise SettingsError(f"{src.headers.get(table, src.shown)}: unknown table [{table}]{hint}; "
                                f"known tables: {', '.join(f'[{t}]' for t in schema.TABLES)}")
        known = list(schema.fields(table))
        checked: dict[str, Raw] = {}
        for key, raw in values.items():
            if key not in known:
                raise SettingsError(f"{raw.where}: unknown setting [{table}] {key}{_did_you_mean(key, known)}")
            try:
                value = _convert_one(table, key, raw.value, strict=True)
            except msgspec.ValidationError as exc:
                raise SettingsError(f"{raw.where}: " + _type_error(f"[{table}] {key}", raw.value, exc)) from None
            checked[key] = Raw(value, raw.where)
        out[table] = checked
    return out


def _check_model(name: str, raw: Raw) -> dict[str, object]:
    """One `[models.NAME]` table, each key checked as the same key of [llm]."""
    if not re.fullmatch(schema.MODEL_NAME, name):
        raise SettingsError(f"{raw.where}: [models.{name!r}]: a model's name is letters, digits, '_', '-', '.'")
    if not isinstance(raw.value, dict):
        raise SettingsError(f"{raw.where}: models.{name} must be a table of [llm] keys, such as [models.{name}]")
    known = list(schema.fields("llm"))
    out: dict[str, object] = {}
    for key, value in raw.value.items():
        if key not in known:
            raise SettingsError(f"{raw.where}: unknown setting [models.{name}] {key}{_did_you_mean(key, known)}")
        try:
            out[key] = _convert_one("llm", key, value, strict=True)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"{raw.where}: " + _type_error(f"[models.{name}] {key}", value, exc)) from None
    return out


# What people try to set where a variable's NAME belongs.
_SECRETS = {("llm", "api_key"): "api_key_env", ("llm", "key"): "api_key_env", ("llm", "token"): "api_key_env",
            ("team", "password"): "redis_password_env", ("team", "redis_password"): "redis_password_env"}


def read_environment(env: Mapping[str, str]) -> tuple[dict[str, dict[str, Raw]], set[tuple[str, str]]]:
    """PERFD_<TABLE>_<KEY> (and the older names of schema.ENV_ALIASES): (values, keys unset by "")."""
    values: dict[str, dict[str, Raw]] = {}
    unset: set[tuple[str, str]] = set()
    prefixes = {f"{ENV_PREFIX}{t.upper()}_": t for t in schema.TABLES}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        found = schema.ENV_ALIASES.get(name)
        if found is None:
            table = next((t for p, t in prefixes.items() if name.startswith(p)), None)
            if table is None:
                continue  # PERFD_STATE_DIR and the like: not settings
            key = name[len(ENV_PREFIX) + len(table) + 1:].lower()
            if (table, key) in _SECRETS:
                raise SettingsError(f"{name} is not a setting: perfd never takes a secret itself. Put it in a "
                                    f"variable of your own and set [{table}] {_SECRETS[(table, key)]} to its NAME")
            if key not in schema.fields(table):
                known = [f"{ENV_PREFIX}{table.upper()}_{k.upper()}" for k in schema.fields(table)]
                raise SettingsError(f"unknown setting {name} in the environment{_did_you_mean(name, known)}")
            found = (table, key)
        table, key = found
        if text.strip() == "":
            unset.add(found)  # an empty variable unsets the files' value
            continue
        try:
            value = _convert_one(table, key, text.strip(), strict=False)
        except msgspec.ValidationError as exc:
            shown = "(hidden)" if found in schema.HIDDEN else text
            raise SettingsError(f"invalid {name}={shown!r} in the environment: "
                                + _type_error(f"[{table}] {key}", shown, exc).split(": ", 1)[1]) from None
        values.setdefault(table, {})[key] = Raw(value, name)
    return values, unset


def _trusted_by_environment(root: str, environ: Mapping[str, str]) -> bool:
    for entry in environ.get(TRUSTED_PATHS_ENV, "").split(os.pathsep):
        if entry.strip() and os.path.isabs(entry):
            base = os.path.realpath(entry)
            if root == base or root.startswith(base.rstrip(os.sep) + os.sep):
                return True
    return False


def _check_values(ws: WorkspaceSettings, origin: Origin) -> None:
    plans = ws.plans_dir
    parts = plans.replace("\\", "/").split("/")
    if os.path.isabs(plans) or ".." in parts or not plans.strip():
        raise SettingsError(f"{origin.where}: [workspace] plans_dir = {plans!r}: a folder inside the workspace, "
                            "relative to its root (such as 'work-space/plans')")


def load(root: str | None, env: Mapping[str, str] | None = None, *, user: bool = True) -> Settings:
    """The settings in force for the workspace at `root` (None: the user's and the environment's only)."""
    environ = os.environ if env is None else env
    root = os.path.realpath(root) if root is not None else None
    files: list[str] = []
    user_tables: dict[str, dict[str, Raw]] = {}
    if user:
        path = user_file(dict(environ))
        if os.path.isfile(path):
            user_tables = check_file(read_file(path, root=None))
            files.append(path)
    ws_tables: dict[str, dict[str, Raw]] = {}
    ws_path = workspace_file(root) if root is not None else None
    if ws_path is not None:
        ws_tables = check_file(read_file(ws_path, root=root))
        files.append(ws_path)
    env_tables, unset = read_environment(environ)

    # What the workspace sets that needs trust, and whether it has it.
    needing = {f"[{t}] {k}": raw.value for t, vals in ws_tables.items() for k, raw in vals.items()
               if schema.needs_trust(t, k, raw.value)}
    current = trust.digest(root, needing) if needing and root is not None else ""
    trusted = not needing or (root is not None and (_trusted_by_environment(root, environ)
                                                    or trust.is_trusted(root, current)))

    entries: list[Entry] = []
    waiting: list[str] = []
    merged: dict[str, dict[str, object]] = {t: {} for t in schema.TABLES}
    origins: dict[tuple[str, str], Origin] = {}
    def take(table: str, key: str, layers: list[tuple[str, Raw | None]]) -> tuple[Raw, Origin] | None:
        """The value a setting takes from its layers (first wins), each layer's entry recorded with why it
        is ignored: overridden, waiting for trust, or unset by an empty environment variable."""
        chosen: tuple[Raw, Origin] | None = None
        for source, raw in layers:
            if raw is None:
                continue
            ignored = ""
            if chosen is not None:
                ignored = f"overridden by {chosen[1].where}"
            elif source == WORKSPACE and not trusted and f"[{table}] {key}" in needing:
                ignored = "waits for `perfd trust`"
                waiting.append(f"[{table}] {key}")
            elif source != ENVIRONMENT and (table, key) in unset:
                ignored = "unset by an empty environment variable"
            origin = Origin(source, raw.where)
            entries.append(Entry(table=table, key=key, value=raw.value, origin=origin, ignored=ignored))
            if not ignored:
                chosen = (raw, origin)
        return chosen

    for table in schema.TABLES:
        for key in schema.fields(table):
            got = take(table, key, [(ENVIRONMENT, env_tables.get(table, {}).get(key)),
                                    (WORKSPACE, ws_tables.get(table, {}).get(key)),
                                    (USER, user_tables.get(table, {}).get(key))])
            if got is not None:
                merged[table][key] = got[0].value
                origins[(table, key)] = got[1]
    # Named models: each [models.NAME] whole, the workspace's over the user's (the environment sets none).
    merged[schema.MODELS] = {}
    for name in sorted({*ws_tables.get(schema.MODELS, {}), *user_tables.get(schema.MODELS, {})}):
        got = take(schema.MODELS, name, [(WORKSPACE, ws_tables.get(schema.MODELS, {}).get(name)),
                                         (USER, user_tables.get(schema.MODELS, {}).get(name))])
        if got is not None:
            merged[schema.MODELS][name] = got[0].value
    ws = msgspec.convert(merged["workspace"], WorkspaceSettings)
    _check_values(ws, origins.get(("workspace", "plans_dir"), Origin(DEFAULT, "default")))
    return Settings(root=root, workspace=ws, cache=msgspec.convert(merged["cache"], CacheSettings),
                    daemon=msgspec.convert(merged["daemon"], DaemonSettings),
                    values={t: v for t, v in merged.items() if v}, entries=tuple(entries),
                    waiting=tuple(waiting), digest=current, trusted=trusted, files=tuple(files))


def trust_now(root: str) -> tuple[str, list[str]]:
    """`perfd trust`: record trust in the workspace file's current values; (record path, names trusted)."""
    root = os.path.realpath(root)
    ws_path = workspace_file(root)
    tables = check_file(read_file(ws_path, root=root)) if ws_path else {}
    needing = {f"[{t}] {k}": raw.value for t, vals in tables.items() for k, raw in vals.items()
               if schema.needs_trust(t, k, raw.value)}
    shown = {name: repr(value) for name, value in needing.items()}
    path = trust.write(root, trust.digest(root, needing), shown)
    return path, sorted(needing)
