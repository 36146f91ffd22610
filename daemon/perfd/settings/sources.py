"""Where settings come from, read as they are: the workspace file, the user's config, the environment.

Each source gives raw values per (table, key) with the place each was read
(file and line, or the variable's name). Nothing here decides which wins or
whether a value is allowed: perfd.settings.resolve does.
"""

from __future__ import annotations

import os
import re
import tomllib

import msgspec

from perfd.fsutil import read_regular

# A settings file is a few lines; a larger one is a mistake or an attack, not read into memory.
MAX_SETTINGS_BYTES = 4 * 1048576
WORKSPACE_FILES = ("perfd.toml", os.path.join(".perfd", "perfd.toml"))
PYPROJECT = "pyproject.toml"


class SettingsError(Exception):
    """A setting cannot be used: one line naming the file (and line) or variable, the setting and why."""


class Raw(msgspec.Struct, frozen=True):
    """One value as a source gives it, and where: "perfd.toml:12", "PERFD_LLM_MODEL"."""

    value: object
    where: str


class SourceFile(msgspec.Struct, frozen=True):
    """A settings file read: its path, its tables' raw values, and lines of top-level keys."""

    path: str
    shown: str  # how messages name it (relative to the workspace, or with ~)
    tables: dict[str, dict[str, Raw]]
    headers: dict[str, str]  # table -> where its header is
    stray: dict[str, Raw]  # keys outside any table, and tables that are not tables (errors later)


def workspace_file(root: str) -> str | None:
    """The file that configures the workspace at `root`: perfd.toml, .perfd/perfd.toml, else pyproject.toml."""
    for name in WORKSPACE_FILES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    pyproject = os.path.join(root, PYPROJECT)
    return pyproject if os.path.isfile(pyproject) else None


def user_file(env: dict[str, str] | None = None) -> str:
    """$XDG_CONFIG_HOME/perfd/config.toml, else ~/.config/perfd/config.toml (it may not exist)."""
    environ = os.environ if env is None else env
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "perfd", "config.toml")


def shown_path(path: str, root: str | None) -> str:
    if root is not None and path.startswith(root + os.sep):
        return path[len(root) + 1:]
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if home != "/" and path.startswith(home + os.sep) else path


_HEADER = re.compile(r"^\s*\[(?!\[)\s*([^\]]+?)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\-]+|\"[^\"]*\"|'[^']*')\s*=")


def _lines(text: str, prefix: tuple[str, ...]) -> dict[tuple[str, ...], int]:
    """(table path..., key) -> the line it is set on, for messages (tomllib gives no positions)."""
    out: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for n, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            table = tuple(p.strip().strip("\"'") for p in m.group(1).split("."))
            out.setdefault(table, n)
            continue
        m = _KEY.match(line)
        if m:
            key = tuple(p.strip("\"'") for p in m.group(1).split("."))
            out.setdefault(table + key, n)
    if prefix:
        out = {k[len(prefix):]: v for k, v in out.items() if k[:len(prefix)] == prefix}
    return out


def read_file(path: str, *, root: str | None) -> SourceFile:
    """A settings file's tables with where each value is; SettingsError when it cannot be read as TOML."""
    shown = shown_path(path, root)
    if root is not None:  # the workspace's file: a symlink leading out of the workspace is not followed
        real = os.path.realpath(path)
        if not real.startswith(os.path.realpath(root) + os.sep):
            raise SettingsError(f"{shown}: a link leading outside the workspace; not read")
    try:
        raw = read_regular(path, limit=MAX_SETTINGS_BYTES)
    except OSError as exc:
        raise SettingsError(f"{shown}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SETTINGS_BYTES:
        raise SettingsError(f"{shown}: larger than {MAX_SETTINGS_BYTES // 1048576} MiB; not read")
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{shown}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{shown}: invalid TOML: {exc}") from None
    prefix: tuple[str, ...] = ()
    if os.path.basename(path) == PYPROJECT:
        prefix = ("tool", "perfd")
        tool = data.get("tool")
        section = tool.get("perfd") if isinstance(tool, dict) else None
        data = section if isinstance(section, dict) else {}
    lines = _lines(text, prefix)

    def at(*key: str) -> str:
        n = lines.get(key)
        return f"{shown}:{n}" if n else shown

    tables: dict[str, dict[str, Raw]] = {}
    headers: dict[str, str] = {}
    stray: dict[str, Raw] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            tables[name] = {k: Raw(v, at(name, k)) for k, v in value.items()}
            headers[name] = at(name)
        else:
            stray[name] = Raw(value, at(name))
    return SourceFile(path, shown, tables, headers, stray)
