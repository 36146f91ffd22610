"""Code objects for the methods attrs generates, kept from one start to the next.

Importing lsprotocol makes attrs build about 570 classes. For each one, attrs
writes the source of its __init__, __repr__, __eq__ and the like, and compiles
it: about 0.3 s of the 0.65 s that import takes, on every cold start of an
editor session. The same source always compiles to the same code, so perfd
keeps the code objects, keyed by (file name, source), in one marshal file (the
format of .pyc files) in its private state folder, and hands them back to
attrs instead of compiling again.

- Correctness: a key is the whole source text, so a changed attrs or
  lsprotocol only misses; the file name carries Python's bytecode magic number,
  so another interpreter never reads it. Each save keeps only the entries this
  start used, so old ones do not pile up.
- Trust: like a .pyc, the file is code. It is read only from the 0700 state
  folder, only when it belongs to this user and nobody else may write it.
- Failure: any problem with the file means compiling as before, never an error.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import logging
import marshal
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType, ModuleType

log = logging.getLogger("perfd.daemon")
MAX_BYTES = 64 << 20  # a cache larger than this is not ours: ignore it
_import_lock = threading.Lock()  # two sessions starting at once: one patches and imports, the other waits


def default_path() -> str:
    from perfd.paths import state_dir

    tag = importlib.util.MAGIC_NUMBER.hex()
    return os.path.join(state_dir(), f"codecache-{sys.implementation.cache_tag}-{tag}-O{sys.flags.optimize}.marshal")


class CodeCache:
    """A `compile` for generated sources: known (file name, source) pairs come from the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.known: dict[str, CodeType] = _load(path)
        self.used: dict[str, CodeType] = {}
        self.hits = 0
        self.misses = 0

    def compile(self, source: str | bytes | ast.Module | ast.Expression | ast.Interactive,
                filename: str | bytes | os.PathLike[str], mode: str,
                flags: int = 0, dont_inherit: bool = False, optimize: int = -1) -> CodeType | ast.AST:
        if (flags or dont_inherit or optimize != -1 or mode != "exec" or not isinstance(source, str)
                or not isinstance(filename, str)):
            other: CodeType | ast.AST = builtins.compile(source, filename, mode, flags, dont_inherit, optimize)
            return other  # not attrs' plain call
        key = filename + "\0" + source
        code = self.known.get(key)
        if code is None:
            code = builtins.compile(source, filename, mode)
            self.misses += 1
        else:
            self.hits += 1
        self.used[key] = code
        return code

    def save(self) -> None:
        """Write the entries used this time, if enough were new (atomically; errors are logged).

        attrs puts a per-process hash seed into the __hash__ of a hashable class, so
        a few methods differ on every start and always miss: rewriting 2 MB for them
        would cost every start a write and gain nothing. A new attrs or lsprotocol
        (most entries new) is saved.
        """
        if self.misses * 50 <= len(self.used):
            return
        from perfd.fsutil import write_atomic

        try:
            write_atomic(self.path, marshal.dumps(self.used), force=True)
        except (OSError, ValueError) as exc:
            log.warning("could not save the code cache %s: %s", self.path, exc)


def _load(path: str) -> dict[str, CodeType]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return {}
    try:
        st = os.fstat(fd)
        folder = os.stat(os.path.dirname(path))
        if (st.st_uid != os.getuid() or st.st_mode & 0o022 or folder.st_uid != os.getuid()
                or folder.st_mode & 0o022 or st.st_size > MAX_BYTES):
            log.warning("ignoring the code cache %s: not private to this user", path)
            return {}
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError) as exc:
        log.warning("ignoring the code cache %s: %s", path, exc)
        return {}
    finally:
        if fd >= 0:
            os.close(fd)
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, CodeType)}


@contextmanager
def generated_code_cached(path: str | None = None) -> Iterator[CodeCache | None]:
    """Within the block, attrs compiles through a CodeCache; it is saved on the way out.

    attrs calls `compile` as a global name in attr._make; a module attribute of
    that name shadows the builtin for that module alone. An attrs that no
    longer calls it so simply never consults the cache.
    """
    try:
        cache = CodeCache(path or default_path())
        import attr._make as make
    except Exception as exc:  # no state folder, no attrs: compile as usual
        log.warning("code cache unavailable: %s", exc)
        yield None
        return
    before = vars(make).get("compile")
    # setattr: a name attr._make does not declare (the type checker knows only its own names)
    setattr(make, "compile", cache.compile)
    try:
        yield cache
    finally:
        if before is None:
            delattr(make, "compile")
        else:
            setattr(make, "compile", before)
        cache.save()
        log.info("code cache: %d generated methods reused, %d compiled", cache.hits, cache.misses)


def import_cached(name: str, path: str | None = None) -> ModuleType:
    """import_module(name), with attrs' generated methods from the code cache on a first import."""
    with _import_lock:
        if name in sys.modules:
            return importlib.import_module(name)
        with generated_code_cached(path):
            return importlib.import_module(name)
