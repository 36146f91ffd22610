"""The examples of docs/PLAN-FORMAT.md read as the guide says (the comment after each example)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from perfd.engine.docs_parser import parse_work
from perfd.engine.engine import Engine

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "PLAN-FORMAT.md"
_EXAMPLE_RE = re.compile(r"```markdown\n(?P<text>.*?)\n```\n<!-- perfd(?P<kind> execution)?: (?P<want>[^>]*?) -->",
                         re.S)


def examples() -> list[tuple[str, str, str]]:
    found = [(m.group("text"), "execution" if m.group("kind") else "plan", m.group("want"))
             for m in _EXAMPLE_RE.finditer(GUIDE.read_text(encoding="utf-8"))]
    return found


def test_the_guide_has_checked_examples() -> None:
    kinds = [k for _t, k, _w in examples()]
    assert kinds.count("plan") >= 4 and kinds.count("execution") >= 2


@pytest.mark.parametrize("text,kind,want", examples())
def test_a_guide_example_reads_as_it_says(tmp_path: Path, text: str, kind: str, want: str) -> None:
    if kind == "execution":
        assert parse_work(text.encode(), "EXECUTION_TASK_X_11_01.md", "execution").status == want
        return
    folder = tmp_path / "work-space" / "plans" / "EXAMPLE"
    folder.mkdir(parents=True)
    (folder / "PLAN_EXAMPLE.md").write_text(text + "\n", encoding="utf-8")
    st = Engine(str(tmp_path)).plan_status("@EXAMPLE")
    expected = dict(item.split("=", 1) for item in want.split())
    nxt = expected.pop("next", None)
    assert {a.number: a.state for a in st.achievements} == expected
    if nxt is not None:
        assert st.next == nxt
    assert not [p for p in st.problems if p.severity != "info"], st.problems
