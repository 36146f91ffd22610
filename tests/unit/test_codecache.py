"""perfd.daemon.codecache: attrs' generated methods come back from the cache, and a bad cache file is never trusted."""

from __future__ import annotations

import logging
import marshal
import os
import sys
from pathlib import Path

import attr
import attr._make
import pytest

from perfd.daemon.codecache import CodeCache, generated_code_cached, import_cached


def _define(n: int) -> type:
    @attr.define
    class Point:
        x: int
        y: int = attr.field(default=n)

    return Point


def test_generated_methods_are_compiled_once_then_served_from_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "code.marshal")
    with generated_code_cached(path) as first:
        assert first is not None
        A = _define(3)
    assert first.misses >= 1 and first.hits == 0
    assert "compile" not in vars(attr._make), "the patch is gone after the block"
    assert os.stat(path).st_mode & 0o022 == 0

    with generated_code_cached(path) as second:
        assert second is not None
        B = _define(3)
    assert second.hits == first.misses and second.misses == 0
    # the classes built from cached code behave as the compiled ones
    assert repr(A(1)) == repr(B(1)).replace(B.__qualname__, A.__qualname__)
    assert B(1) == B(1, 3) and B(1) != B(2) and B(1).y == 3

    # mostly new sources (a new attrs, say): saved, keeping only what was used this time
    with generated_code_cached(path) as third:
        assert third is not None
        fresh = [attr.make_class(f"N{i}", [f"g{i}", "h"]) for i in range(5)]
    assert third.misses == 5 and fresh[0](1, 2) == fresh[0](1, 2)
    with open(path, "rb") as f:
        assert len(marshal.loads(f.read())) == len(third.used) == 5


@pytest.mark.parametrize("content", [b"", b"garbage \x00\xff", marshal.dumps([1, 2]), marshal.dumps({"k": 1}),
                                     marshal.dumps({1: compile("x = 1", "f", "exec")})])
def test_a_damaged_or_foreign_file_is_ignored(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "code.marshal"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    cache = CodeCache(str(path))
    assert cache.known == {}
    with generated_code_cached(str(path)):
        assert _define(5)(1).y == 5


def test_a_file_others_may_write_is_not_trusted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = tmp_path / "code.marshal"
    with generated_code_cached(str(good)):
        _define(6)
    assert CodeCache(str(good)).known
    os.chmod(good, 0o666)
    with caplog.at_level(logging.WARNING, logger="perfd.daemon"):
        assert CodeCache(str(good)).known == {}
    assert "not private" in caplog.text
    os.chmod(good, 0o600)
    link = tmp_path / "link.marshal"
    link.symlink_to(good)
    assert CodeCache(str(link)).known == {}  # never through a symlink


def test_a_few_new_methods_do_not_rewrite_the_file(tmp_path: Path) -> None:
    path = tmp_path / "code.marshal"
    def classes(n: int) -> list[type]:  # n classes with n different generated sources
        return [attr.make_class(f"C{i}", [f"f{i}"]) for i in range(n)]

    with generated_code_cached(str(path)) as first:
        classes(60)
    assert first is not None and first.misses == 60
    written = path.stat().st_mtime_ns
    size = path.stat().st_size
    with generated_code_cached(str(path)) as again:
        classes(61)  # one new among 61, as attrs' per-process hash seed makes one class differ
    assert again is not None and again.misses == 1 and again.hits == 60
    assert path.stat().st_mtime_ns == written and path.stat().st_size == size


def test_other_compile_calls_pass_through(tmp_path: Path) -> None:
    cache = CodeCache(str(tmp_path / "c.marshal"))
    assert cache.compile("1 + 1", "<e>", "eval") is not None
    assert cache.compile(b"x = 1", "<b>", "exec") is not None
    assert cache.compile("x = 1", "<f>", "exec", dont_inherit=True) is not None
    assert cache.used == {} and cache.misses == 0
    cache.save()  # nothing new: no file
    assert not (tmp_path / "c.marshal").exists()


def test_import_cached_imports_once_and_returns_loaded_modules(tmp_path: Path) -> None:
    assert import_cached("json", str(tmp_path / "c.marshal")) is sys.modules["json"]
    name = "perfd_codecache_probe"
    (tmp_path / f"{name}.py").write_text("import attr\n@attr.define\nclass P:\n    a: int\n")
    sys.path.insert(0, str(tmp_path))
    try:
        mod = import_cached(name, str(tmp_path / "c.marshal"))
        assert mod.P(1) == mod.P(1)
        assert (tmp_path / "c.marshal").exists()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
