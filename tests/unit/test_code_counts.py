"""The `Any` and `type: ignore` counts of tests/code_counts.py: shown right on small sources, then kept on perfd."""

from __future__ import annotations

import json
from pathlib import Path

import code_counts as cc
import pytest

import perfd

PERFD_DIR = Path(perfd.__file__).resolve().parent


def one(source: str) -> cc.FileCounts:
    [counts] = cc.count_sources({"pkg/a.py": source})
    return counts


def test_any_is_counted_as_a_name_of_the_code_only() -> None:
    source = (
        "from typing import Any\n"  # an import is not a use
        "from typing import (\n    Any as A2,\n    cast,\n)\n"  # nor over several lines
        "import typing\n"
        "# Any in a comment\n"
        "def f(x: Any) -> dict[str, Any]:\n"  # 2
        "    '''Any in a docstring.'''\n"
        "    return cast(typing.Any, {'Any': 'Any'})\n"  # 1: dotted counts, strings do not
        "AnyThing = 1  # a longer name is another name\n"
    )
    assert cc.count_tokens(source) == (3, 0)
    assert cc.token_lines(source)[0] == [8, 8, 10]


def test_an_alias_mentioning_any_is_counted_at_each_use() -> None:
    counts = cc.count_sources({
        "pkg/__init__.py": "",
        "pkg/types.py": ("from typing import Any, TypeAlias\n"
                         "JSON = dict[str, Any]\n"  # 1 name
                         "Rows: TypeAlias = list[JSON]\n"  # an alias of the alias: 1 use of JSON
                         "Plain = dict[str, int]\n"  # mentions no Any: its uses are not counted
                         "value: Any = None\n"  # a variable, not an alias: 1 name, its uses not counted
                         "def f(x: JSON, y: Plain) -> Rows:\n"  # 2 uses
                         "    return [x, value]\n"),
        "pkg/user.py": ("from .types import JSON as J, Rows, Plain, value\n"  # imports are not uses
                        "def g(a: J, b: 'J') -> list[Rows]:\n"  # 2 uses (a quoted annotation is a string)
                        "    return [value]\n"),
        "pkg/other.py": "JSON = 1\nprint(JSON)\n",  # another module's own name
    })
    by_path = {c.path: c for c in counts}
    assert (by_path["pkg/types.py"].any_names, by_path["pkg/types.py"].alias_uses) == (2, 3)
    assert (by_path["pkg/user.py"].any_names, by_path["pkg/user.py"].alias_uses) == (0, 2)
    assert by_path["pkg/other.py"].any == 0
    assert cc.totals(counts).any == 7


def test_type_ignore_comments_are_counted() -> None:
    source = (
        "x = f()  # type: ignore\n"
        "y = g()  # type: ignore[attr-defined]\n"
        "z = h()  #type:ignore\n"
        "w = k()  # noqa: E501  # type: ignore[misc]\n"
        "s = '# type: ignore'\n"  # a string
        "# a comment saying no type: ignore is needed here\n"
    )
    assert one(source).type_ignores == 4
    assert cc.token_lines(source)[1] == [1, 2, 3, 4]


def test_counts_are_grouped_by_directory() -> None:
    counts = cc.count_sources({
        "pkg/__init__.py": "",
        "pkg/config.py": "from typing import Any\nx: Any = 1  # type: ignore\n",
        "pkg/wire/__init__.py": "",
        "pkg/wire/protocol.py": "from typing import Any\ndef f(a: Any, b: Any) -> None: ...\n",
        "pkg/wire/deep/x.py": "from typing import Any\ny: Any\n",
    })
    assert cc.by_directory(counts) == {
        "pkg/": cc.Totals(any=1, any_names=1, alias_uses=0, type_ignores=1),
        "pkg/wire/": cc.Totals(any=3, any_names=3, alias_uses=0, type_ignores=0),
    }


def test_the_script_prints_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cc.main([str(PERFD_DIR)]) == 0
    assert "total" in capsys.readouterr().out
    assert cc.main(["--json", str(PERFD_DIR)]) == 0
    assert json.loads(capsys.readouterr().out)["goals"] == {"any": 90, "type_ignores": 8}


def perfd_counts() -> list[cc.FileCounts]:
    return cc.count_sources(cc.read_package(PERFD_DIR))


def test_perfd_has_at_most_90_any() -> None:
    counts = perfd_counts()
    total = cc.totals(counts)
    assert total.any <= cc.ANY_GOAL, (
        f"{total.any} Any in perfd ({total.any_names} names, {total.alias_uses} uses of aliases that mention it),"
        f" the goal is at most {cc.ANY_GOAL}; by file:\n" + "\n".join(
            f"  {c.path}: {c.any} ({c.any_names} + {c.alias_uses})"
            for c in sorted(counts, key=lambda c: -c.any) if c.any))


def test_perfd_has_at_most_8_type_ignores() -> None:
    sources = cc.read_package(PERFD_DIR)
    where = [f"{path}:{line}" for path, source in sources.items() for line in cc.token_lines(source)[1]]
    assert len(where) <= cc.TYPE_IGNORE_GOAL, (
        f"{len(where)} `type: ignore` in perfd, the goal is at most {cc.TYPE_IGNORE_GOAL}:\n"
        + "\n".join(f"  {w}" for w in where))
