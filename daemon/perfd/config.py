"""Workspace configuration: `perfd.toml`, else `[tool.perfd]` in pyproject.toml.

Every component reads its own table (`[cache]`, `[daemon]`, `[llm]`, ...) from
the mapping returned here; this module only finds and loads the file, so a
broken file is one clear problem instead of a crash in each component.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from perfd.fsutil import read_regular
from perfd.settings.sources import SettingsError

# A settings file is a few lines; a larger one is a mistake or an attack, not read into memory.
MAX_CONFIG_BYTES = 4 * 1048576


DEFAULT_IDLE_TIMEOUT_S = 1800.0  # [daemon] idle_timeout_s


# One error for settings that cannot be used, wherever they are read (perfd.settings).
ConfigError = SettingsError


def config_path(root: str) -> str | None:
    """The file that configures the workspace at `root`, if any."""
    for name in ("perfd.toml", ".perfd/perfd.toml"):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    pyproject = os.path.join(root, "pyproject.toml")
    if os.path.isfile(pyproject):
        return pyproject
    return None


def load_config(root: str) -> dict[str, object]:
    """The perfd settings of the workspace at `root` as a plain mapping.

    `perfd.toml` holds the tables at top level; pyproject.toml holds them
    under `[tool.perfd]`. No file gives an empty mapping. A file that is not
    valid TOML raises ConfigError naming the file and the parser's message.
    """
    path = config_path(root)
    if path is None:
        return {}
    try:
        raw = read_regular(path, limit=MAX_CONFIG_BYTES)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1048576} MiB; not read")
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if path.endswith("pyproject.toml"):
        tool = data.get("tool", {})
        section = tool.get("perfd", {}) if isinstance(tool, dict) else {}
        return section if isinstance(section, dict) else {}
    return data


def table(config: Mapping[str, object], name: str) -> dict[str, Any]:
    """One table of the configuration (`{}` when absent or not a table).

    Its values are as the file has them (Any: each component checks the settings it reads)."""
    value = config.get(name, {})
    return value if isinstance(value, dict) else {}
