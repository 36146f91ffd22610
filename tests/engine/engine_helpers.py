"""Helpers that build synthetic PLAN workspaces in tmp_path.

A workspace is `<root>/work-space/plans/<FEATURE>/...` as described in
../shared/PLAN-FORMAT.md. `WS` writes the files; `plan_text` renders a plan
from a list of achievements so each test states only what it is about.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from perfd.engine import engine as engine_mod
from perfd.engine.engine import Engine

REPO_ROOT = Path(__file__).resolve().parents[2]
# SHARED_FIXTURES names the shared fixtures folder for a checkout that does not sit beside it (a worktree).
FIXTURES = os.path.join(os.environ.get("SHARED_FIXTURES") or os.path.join(str(REPO_ROOT), "..", "shared", "fixtures"),
                        "context-manager")

Ach = tuple[str, str]  # (number, title)


def nn(number: str) -> str:
    return number.replace(".", "")


def plan_text(
    achievements: Sequence[Ach | str],
    *,
    title: str = "Demo Plan",
    done_index: Iterable[str] = (),
    handoff_next: str | None = None,
    bodies: bool = True,
    body_form: str = "bold",
    extra: str = "",
    before_index: str = "",
    priority: str | None = "**Priority 1: FOUNDATION (HIGH)**",
) -> str:
    """A tidy plan: metadata, index, one body per achievement, handoff, extra text at the end."""
    achs = [(a, f"Title {a}") if isinstance(a, str) else a for a in achievements]
    done = set(done_index)
    out = [f"# PLAN: {title}", "", "**Status**: In Progress", "**Created**: 2025-01-01", ""]
    if before_index:
        out += [before_index, ""]
    out += ["## 📋 Achievement Index", ""]
    if priority:
        out += [priority, ""]
    for num, t in achs:
        out.append(f"- {'✅ ' if num in done else ''}Achievement {num}: {t}")
    out.append("")
    if bodies:
        out += ["## 📋 Achievements", ""]
        for num, t in achs:
            if body_form == "bold":
                out.append(f"**Achievement {num}**: {t}")
            elif body_form == "bold-inner":
                out.append(f"**Achievement {num}: {t}**")
            else:
                out.append(f"### Achievement {num}: {t}")
            out += ["", f"Body of {num}.", ""]
    if handoff_next is not None:
        out += ["## 📝 Current Status & Handoff", "", f"**⏳ Next: Achievement {handoff_next}**", ""]
    if extra:
        out += [extra, ""]
    return "\n".join(out)


def work_text(kind: str, achievement: str | None, status: str, planned: Sequence[str] = (),
              title: str | None = None) -> str:
    head = "SUBPLAN" if kind == "subplan" else "EXECUTION_TASK"
    out = [f"# {head}: {title if title is not None else ('Achievement ' + achievement if achievement else 'Work')}",
           "", "**PLAN**: DEMO"]
    if achievement is not None:
        out.append(f"**Achievement**: {achievement}")
    out += [f"**Status**: {status}", "", "## Objective", "", "Do it.", ""]
    if planned:
        out += ["## 🔄 Active EXECUTION_TASKs", "", "| Execution | Objective | Status |",
                "| --- | --- | --- |"]
        out += [f"| {p} | step {p} | 📋 Planned |" for p in planned]
        out += ["", "## Notes", "", "| 99_99 | not part of the table |", ""]
    return "\n".join(out)


class WS:
    """A workspace under tmp_path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.plans = root / "work-space" / "plans"
        self.plans.mkdir(parents=True, exist_ok=True)

    # -- writing ---------------------------------------------------------------

    def write(self, rel: str | Path, text: str | bytes) -> Path:
        p = self.root / rel if not Path(rel).is_absolute() else Path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text, encoding="utf-8")
        return p

    def folder(self, name: str, group: str | None = None) -> Path:
        return self.plans / group / name if group else self.plans / name

    def plan(self, name: str, achievements: Sequence[Ach | str] | str = ("1.1", "1.2"), *,
             group: str | None = None, **kw: object) -> Path:
        text = achievements if isinstance(achievements, str) else plan_text(achievements, **kw)  # type: ignore[arg-type]
        return self.write(self.folder(name, group) / f"PLAN_{name}.md", text)

    def subplan(self, name: str, number: str, status: str = "📋 Design Phase", *, planned: Sequence[str] = (),
                achievement: str | None = "same", file_nn: str | None = None, sub: str = "subplans",
                group: str | None = None) -> Path:
        ach = number if achievement == "same" else achievement
        fname = f"SUBPLAN_{name}_{file_nn or nn(number)}.md"
        return self.write(self.folder(name, group) / sub / fname, work_text("subplan", ach, status, planned))

    def execution(self, name: str, number: str, mm: str = "01", status: str = "📋 Ready for Execution", *,
                  achievement: str | None = "same", file_nn: str | None = None, sub: str = "execution",
                  group: str | None = None) -> Path:
        ach = number if achievement == "same" else achievement
        fname = f"EXECUTION_TASK_{name}_{file_nn or nn(number)}_{mm}.md"
        return self.write(self.folder(name, group) / sub / fname, work_text("execution", ach, status))

    def feedbacks(self, name: str, group: str | None = None) -> Path:
        p = self.folder(name, group) / "execution" / "feedbacks"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def approved(self, name: str, number: str, *, title: str | None = None, file_nn: str | None = None) -> Path:
        t = title if title is not None else f"# APPROVED: Achievement {number}\n\nLooks good.\n"
        return self.write(self.feedbacks(name) / f"APPROVED_{file_nn or nn(number)}.md", t)

    def fix(self, name: str, number: str, critical: Sequence[str] = ("Broken thing",),
            minor: Sequence[str] = ("Small thing",), *, file_nn: str | None = None, title: bool = True) -> Path:
        out = [f"# FIX: Achievement {number}" if title else "# FIX", "", "## Critical Issues", ""]
        out += [f"{i}. {c}" for i, c in enumerate(critical, 1)]
        out += ["", "## Minor Issues", ""]
        out += [f"{i}. {m}" for i, m in enumerate(minor, 1)]
        out.append("")
        return self.write(self.feedbacks(name) / f"FIX_{file_nn or nn(number)}.md", "\n".join(out))

    def parallel(self, name: str, deps: dict[str, list[str]]) -> Path:
        data = {"plan_name": name, "parallelization_level": "level_2",
                "achievements": [{"achievement_id": a, "title": f"T {a}", "dependencies": d,
                                  "estimated_hours": "2-3"} for a, d in deps.items()]}
        return self.write(self.folder(name) / "parallel.json", json.dumps(data, indent=2))

    def age(self, seconds: float = 3600.0) -> None:
        """Set every file's and folder's mtime into the past (out of the cache's racy window)."""
        t = time.time() - seconds
        for dirpath, dirnames, filenames in os.walk(self.root):
            for n in filenames + dirnames:
                os.utime(os.path.join(dirpath, n), (t, t))
            os.utime(dirpath, (t, t))

    # -- reading ---------------------------------------------------------------

    def engine(self) -> Engine:
        return Engine(str(self.root))




def fixtures_root() -> str:
    if not os.path.isdir(os.path.join(FIXTURES, "work-space", "plans")):
        pytest.skip("fixture plans (../shared/fixtures/context-manager) are absent")
    return os.path.abspath(FIXTURES)


def codes(problems: Iterable[object]) -> list[str]:
    return [p.code for p in problems]  # type: ignore[attr-defined]


def by_number(status: object) -> dict[str, object]:
    return {a.number: a for a in status.achievements}  # type: ignore[attr-defined]


def two_plans(ws: WS) -> WS:
    """ALPHA and BETA: 1.1 approved, 1.2 under way (the stores' tests)."""
    for name in ("ALPHA", "BETA"):
        ws.plan(name, ["1.1", "1.2"])
        ws.subplan(name, "1.1", "✅ Complete")
        ws.execution(name, "1.1", status="✅ Complete")
        ws.approved(name, "1.1")
        ws.subplan(name, "1.2", "In Progress")
    ws.age()
    return ws


def counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of every file the engine parses itself from now on (PLAN, SUBPLAN, EXECUTION_TASK, reviews)."""
    parsed: list[str] = []

    def counting(real: Any) -> Any:
        def parse(data: bytes, path: str) -> object:
            parsed.append(path)
            return real(data, path)
        return parse

    for name in ("parse_plan", "parse_subplan", "parse_execution", "parse_approved", "parse_fix"):
        monkeypatch.setattr(engine_mod, name, counting(getattr(engine_mod, name)))
    return parsed
