"""perfd.llm as a package: its lazy names, what importing it costs, and imports that close no loop."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import perfd.llm

LLM_DIR = Path(perfd.llm.__file__).parent


def test_every_public_name_loads_and_importing_the_package_loads_no_http_stack() -> None:
    code = (
        "import sys, perfd.llm\n"
        "heavy = sorted(m for m in ('httpx', 'anyio', 'perfd.llm.client', 'perfd.llm.stream') if m in sys.modules)\n"
        "print('heavy', heavy)\n"
        "for name in perfd.llm.__all__:\n"
        "    getattr(perfd.llm, name)\n"
        "print('loaded', 'perfd.llm.client' in sys.modules)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["heavy []", "loaded True"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        getattr(perfd.llm, "NoSuchThing")


def _imports_of_the_package(file: Path) -> list[str]:
    """Where a module imports perfd.llm itself (not one of its modules): `from . import x` included,
    since it goes through the package's lazy `__getattr__` first."""
    found = []
    for node in ast.walk(ast.parse(file.read_bytes())):
        if isinstance(node, ast.ImportFrom):
            package = (node.level == 1 and node.module is None) or (node.level == 0 and node.module == "perfd.llm")
            if package or (node.level == 0 and node.module == "perfd" and any(a.name == "llm" for a in node.names)):
                found.append(f"{file.name}:{node.lineno}")
        elif isinstance(node, ast.Import) and any(a.name == "perfd.llm" for a in node.names):
            found.append(f"{file.name}:{node.lineno}")
    return found


def test_no_module_of_the_package_imports_the_package() -> None:
    """The package's lazy names import its modules; a module importing the package back would close a loop."""
    modules = [f for f in sorted(LLM_DIR.glob("*.py")) if f.name != "__init__.py"]
    assert len(modules) > 10
    assert [where for f in modules for where in _imports_of_the_package(f)] == []


def test_the_check_above_finds_an_import_of_the_package(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("from . import team_scripts\nfrom .errors import LLMError\nimport perfd.llm\n"
                 "from perfd.llm import LLMClient\nfrom perfd import llm\n")
    assert _imports_of_the_package(f) == ["m.py:1", "m.py:3", "m.py:4", "m.py:5"]
