"""perfd.app.scaffold: the SUBPLAN an achievement starts with, from a template, never over a file."""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

import pytest

from perfd.app.scaffold import create_subplan, subplan_scaffold
from perfd.engine.engine import Engine
from perfd.engine.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")
SUBPLANS = Path("work-space", "plans", "a_real-use-cases", "DOCS-SITE", "subplans")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(EXAMPLE, root)
    return root


def test_the_scaffold_fills_the_template(ws: Path) -> None:
    s = subplan_scaffold(Engine(str(ws)), "@DOCS-SITE", "3.1", today=datetime.date(2026, 11, 29))
    assert s.path == os.path.realpath(ws / SUBPLANS / "SUBPLAN_DOCS-SITE_31.md")
    lines = s.text.split("\n")
    assert lines[0] == "# SUBPLAN: Achievement 3.1 - Release Notes"
    assert "**PLAN**: DOCS-SITE" in lines and "**Achievement**: 3.1" in lines
    assert "**Status**: 📋 Design Phase" in lines and "**Created**: 2026-11-29" in lines
    assert "Depends on achievements 2.1, 2.2, 2.3." in lines
    assert "| 31_01 |  | Planned |" in lines and "{{" not in s.text
    assert not (ws / SUBPLANS / "SUBPLAN_DOCS-SITE_31.md").exists()  # nothing written yet


def test_a_workspace_template_wins(ws: Path) -> None:
    (ws / ".perfd" / "templates").mkdir(parents=True)
    (ws / ".perfd" / "templates" / "scaffold_subplan.md").write_text("# SUBPLAN: {{number}} of {{plan}}\n")
    assert subplan_scaffold(Engine(str(ws)), "@DOCS-SITE", "2.1").text == "# SUBPLAN: 2.1 of DOCS-SITE\n"


def test_create_writes_once_and_the_state_moves_on(ws: Path) -> None:
    engine = Engine(str(ws))
    path = create_subplan(engine, "@DOCS-SITE", "2.1")
    assert Path(path).read_text(encoding="utf-8").startswith("# SUBPLAN: Achievement 2.1 - API Reference\n")
    st = engine.plan_status("@DOCS-SITE")
    assert next(a for a in st.achievements if a.number == "2.1").state == "subplan_no_execution"
    with pytest.raises(UserError, match="SUBPLAN already"):
        create_subplan(engine, "@DOCS-SITE", "2.1")


def test_unknown_achievement_and_finished_ones_are_refused(ws: Path) -> None:
    engine = Engine(str(ws))
    with pytest.raises(UserError, match="no achievement 9.9"):
        create_subplan(engine, "@DOCS-SITE", "9.9")
    with pytest.raises(UserError, match="SUBPLAN already"):
        create_subplan(engine, "@DOCS-SITE", "1.1")


def test_a_link_in_the_way_is_never_followed(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(ws / SUBPLANS)
    (ws / SUBPLANS).symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserError, match="outside the workspace"):
        create_subplan(Engine(str(ws)), "@DOCS-SITE", "2.1")
    assert list(outside.iterdir()) == []
