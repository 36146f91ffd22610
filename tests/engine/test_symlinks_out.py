"""Files that are symlinks out of the workspace are never read: skipped, with a problem naming them.

A cloned repository could otherwise make `perfd run` send a user's own files
(~/.ssh/id_rsa, a .env) to a model provider: one test per kind of file perfd
reads into a prompt, a state, a hover or a diagnostic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine_helpers import WS
from perfd.lsp.features import diagnostics

SECRET = "SECRET-TOKEN-4711"


def _outside(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / "elsewhere" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


def _check(ws: WS, link: Path, *, leaked_state: str | None = None) -> None:
    eng = ws.engine()
    g = eng.generate("@DEMO")
    assert SECRET not in g.prompt
    probs = [p for p in g.problems if p.code == "outside-workspace"]
    assert probs, g.problems
    assert any(os.path.basename(str(link)) in p.message for p in probs)
    if leaked_state is not None:
        assert g.state != leaked_state
    # ... and the editor shows it on the plan's file
    plan = ws.folder("DEMO") / "PLAN_DEMO.md"
    lines = plan.read_text().splitlines()
    diags = diagnostics(g.problems, str(plan), lines)
    assert any(d.code == "outside-workspace" and os.path.basename(str(link)) in d.message for d in diags)


@pytest.fixture
def demo(ws: WS) -> WS:
    ws.plan("DEMO", ["1.1", "1.2"])
    ws.feedbacks("DEMO")
    return ws


def test_a_fix_file_linked_outside_is_not_read(demo: WS, tmp_path: Path) -> None:
    secret = _outside(tmp_path, "fix.md", f"# FIX: Achievement 1.1\n\n## Critical Issues\n\n1. {SECRET}\n")
    link = demo.feedbacks("DEMO") / "FIX_11.md"
    _link(secret, link)
    _check(demo, link, leaked_state="fix_pending")


def test_an_approved_file_linked_outside_does_not_complete_anything(demo: WS, tmp_path: Path) -> None:
    secret = _outside(tmp_path, "ok.md", f"# APPROVED: Achievement 1.1\n\n{SECRET}\n")
    link = demo.feedbacks("DEMO") / "APPROVED_11.md"
    _link(secret, link)
    _check(demo, link)
    assert demo.engine().plan_status("@DEMO").done == 0


def test_an_approved_file_of_an_unknown_number_linked_outside_is_not_read(demo: WS, tmp_path: Path) -> None:
    secret = _outside(tmp_path, "ok99.md", f"# APPROVED: Achievement 1.1\n\n{SECRET}\n")
    link = demo.feedbacks("DEMO") / "APPROVED_99.md"
    _link(secret, link)
    _check(demo, link)


def test_a_subplan_linked_outside_is_not_read(demo: WS, tmp_path: Path) -> None:
    secret = _outside(tmp_path, "sub.md", f"# SUBPLAN: {SECRET}\n\n**Achievement**: 1.1\n**Status**: ✅ Complete\n")
    link = demo.folder("DEMO") / "subplans" / "SUBPLAN_DEMO_11.md"
    _link(secret, link)
    _check(demo, link, leaked_state="subplan_complete")
    assert demo.engine().plan_status("@DEMO").achievements[0].subplan is None


def test_an_execution_task_linked_outside_is_not_read(demo: WS, tmp_path: Path) -> None:
    demo.subplan("DEMO", "1.1", planned=["01"])
    secret = _outside(tmp_path, "ex.md", f"# EXECUTION_TASK: {SECRET}\n\n**Achievement**: 1.1\n**Status**: 🚀 In Progress\n")
    link = demo.folder("DEMO") / "execution" / "EXECUTION_TASK_DEMO_11_01.md"
    _link(secret, link)
    _check(demo, link)
    assert demo.engine().plan_status("@DEMO").achievements[0].executions == []


def test_parallel_json_linked_outside_is_not_read(demo: WS, tmp_path: Path) -> None:
    data = {"plan_name": SECRET, "achievements": [{"achievement_id": "1.1", "dependencies": []},
                                                  {"achievement_id": "1.2", "dependencies": []}]}
    secret = _outside(tmp_path, "parallel.json", json.dumps(data))
    link = demo.folder("DEMO") / "parallel.json"
    _link(secret, link)
    _check(demo, link)
    assert demo.engine().plan_status("@DEMO").parallel_options == []


@pytest.mark.parametrize("how", ["file", "templates folder", "perfd folder"])
def test_a_template_linked_outside_is_not_read(demo: WS, tmp_path: Path, how: str) -> None:
    secret = _outside(tmp_path, "no_subplan.md", f"{SECRET} for {{{{plan}}}}\n")
    if how == "file":
        link = demo.root / ".perfd" / "templates" / "no_subplan.md"
        _link(secret, link)
    elif how == "templates folder":
        _link(secret.parent, demo.root / ".perfd" / "templates")
        link = demo.root / ".perfd" / "templates" / "no_subplan.md"
    else:
        (secret.parent / "templates").mkdir()
        os.replace(secret, secret.parent / "templates" / "no_subplan.md")
        _link(secret.parent, demo.root / ".perfd")
        link = demo.root / ".perfd" / "templates" / "no_subplan.md"
    g = demo.engine().generate("@DEMO")
    assert SECRET not in g.prompt and "Achievement 1.1" in g.prompt  # the built-in template instead
    probs = [p for p in g.problems if p.code == "outside-workspace"]
    assert probs and "no_subplan.md" in probs[0].message


def test_links_that_stay_inside_the_workspace_are_read(demo: WS) -> None:
    real = demo.write("notes/fix.md", "# FIX: Achievement 1.1\n\n## Critical Issues\n\n1. Inside thing\n")
    _link(real, demo.feedbacks("DEMO") / "FIX_11.md")
    tmpl = demo.write("shared-templates/no_subplan.md", "custom {{plan}}\n")
    _link(tmpl.parent, demo.root / ".perfd" / "templates")
    g = demo.engine().generate("@DEMO")
    assert g.state == "fix_pending" and "Inside thing" in g.prompt
    assert not [p for p in g.problems if p.code == "outside-workspace"]

