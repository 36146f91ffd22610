"""What remains of the raw configuration: its error type, and one table of a raw mapping.

Settings are found, read, merged and checked by perfd.settings; a parse worker
still receives its engine's tables as a plain mapping (perfd.engine.engine).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perfd.settings.sources import SettingsError

# One error for settings that cannot be used, wherever they are read (perfd.settings).
ConfigError = SettingsError


def table(config: Mapping[str, object], name: str) -> dict[str, Any]:
    """One table of the configuration (`{}` when absent or not a table).

    Its values are as the file has them (Any: each component checks the settings it reads)."""
    value = config.get(name, {})
    return value if isinstance(value, dict) else {}
