"""The settings in force for a long-lived process (the daemon), seen again before every answer.

A daemon lives for hours while people edit perfd.toml, their user config, and
run `perfd trust`. Reading and merging every source per request would cost a
TOML parse each time; instead `current()` stats the files the settings can
come from (each candidate workspace file, the user config, the trust record)
and reads again only when one's stat key changed: a few stat calls, some
microseconds. A request may also carry the caller's own PERFD_* variables
(`for_request`): those settings are merged over the same files, and kept for
the next request with the same variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from perfd.paths import settings_variables

from . import trust
from .resolve import Settings, load
from .sources import PYPROJECT, WORKSPACE_FILES, SettingsError, user_file

StatKey = tuple[int, int, int, int] | None


def _stat_key(path: str) -> StatKey:
    try:
        st = os.stat(path)
    except OSError:
        return None
    # ctime too: it changes even when an editor or a tool restores the old mtime
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns


class LiveSettings:
    """The settings of one workspace root, re-read when a file they come from changes."""

    def __init__(self, root: str, env: Mapping[str, str] | None = None) -> None:
        self.root = os.path.realpath(root)
        base = dict(os.environ if env is None else env)
        self._env = base
        # The process's own environment without its settings: a request's PERFD_* replace them.
        own = settings_variables(base)
        self._own_key = frozenset(own.items())
        self._bare = {k: v for k, v in base.items() if k not in own}
        self._paths = [os.path.join(self.root, name) for name in (*WORKSPACE_FILES, PYPROJECT)]
        self._paths.append(user_file(base))
        try:
            self._paths.append(trust.record_path(self.root))
        except SettingsError:
            pass  # no state folder: nothing can be trusted, and loading says why when it matters
        self._keys: tuple[StatKey, ...] | None = None
        self._loaded: dict[frozenset[tuple[str, str]], Settings | SettingsError] = {}
        self._prints: dict[tuple[int, tuple[str, ...]], str] = {}  # of the settings in _loaded (ids live as long)
        self.reloads = 0  # how often a changed file was read again (stats, tests)

    def _fresh(self) -> None:
        keys = tuple(_stat_key(p) for p in self._paths)
        if keys != self._keys:
            self._keys = keys
            if self._loaded:
                self.reloads += 1
            self._loaded.clear()
            self._prints.clear()

    def _get(self, key: frozenset[tuple[str, str]], variables: Mapping[str, str] | None, *,
             look: bool = True) -> Settings:
        """The settings for these PERFD_* variables (`key`), loaded once per change of the files."""
        if look:
            self._fresh()
        got = self._loaded.get(key)
        if got is None:
            try:
                got = load(self.root, self.env_for(variables))
            except SettingsError as exc:
                got = exc
            if len(self._loaded) >= 16:  # a few callers' variables at most; an attacker's many are not kept
                self._loaded.clear()
                self._prints.clear()
            self._loaded[key] = got
        if isinstance(got, SettingsError):
            raise got
        return got

    def current(self) -> Settings:
        """The settings in force with this process's environment (SettingsError when unusable)."""
        return self._get(self._own_key, None)

    def env_for(self, variables: Mapping[str, str] | None) -> dict[str, str]:
        """This process's environment with a request's PERFD_* variables in place of its own (None: as is).
        Secrets (API keys, passwords) are read from it: they are this process's, never a caller's."""
        if variables is None:
            return self._env
        env = dict(self._bare)
        env.update(settings_variables(variables))  # PERFD_TRUSTED_PATHS too: the caller's trust, not the daemon's
        return env

    def both(self, variables: Mapping[str, str] | None) -> tuple[Settings, Settings]:
        """(this process's settings, a request's) from one look at the files (SettingsError for either)."""
        own = self.current()
        if variables is None:
            return own, own
        return own, self._get(frozenset(settings_variables(variables).items()), variables, look=False)

    def for_request(self, variables: Mapping[str, str] | None) -> Settings:
        """The settings for a request that carries its caller's PERFD_* variables (None: this process's)."""
        if variables is None:
            return self.current()
        return self._get(frozenset(settings_variables(variables).items()), variables)

    def fingerprint(self, settings: Settings, *tables: str) -> str:
        """settings.fingerprint(*tables), worked out once per settings read (a request pays a dict lookup)."""
        key = (id(settings), tables)
        got = self._prints.get(key)
        if got is None:
            got = self._prints[key] = settings.fingerprint(*tables)
        return got

    @property
    def env(self) -> dict[str, str]:
        """The environment the daemon was started with (secrets are read from it, never from a caller)."""
        return self._env
