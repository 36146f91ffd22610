"""Synthetic PLAN workspaces for benchmarks: large, varied, deterministic."""

from __future__ import annotations

import os
import random

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The real plans beside the repository (absent on some machines: benches fall back to synthetic ones).
FIXTURES = os.path.join(REPO, "..", "shared", "fixtures", "context-manager")
LARGEST = "LLM-DASHBOARD-CLI"  # the largest fixture plan, about 3,000 lines


def plan_text(achievements: int, *, body_lines: int = 30, seed: int = 1) -> str:
    """A plan with `achievements` achievements over several priorities, using every header notation."""
    rnd = random.Random(seed)
    nums = []
    for i in range(achievements):
        major, minor = divmod(i, 12)
        nums.append(f"{major}.{minor + 1}")
    out = ["# PLAN: Synthetic Scaling Plan", "", "**Status**: In Progress", "**Priority**: HIGH",
           "**Created**: 2026-11-01", "", "---", "", "## 📋 Achievement Index", ""]
    major_seen = None
    for n in nums:
        major = n.split(".")[0]
        if major != major_seen:
            out += ["", f"**Priority {major}: GROUP {major} (MEDIUM)**", ""]
            major_seen = major
        done = "✅ " if rnd.random() < 0.2 else ""
        out.append(f"- {done}Achievement {n}: Feature {n} of the synthetic plan")
    out += ["", "---", "", "## 🎯 Goal", "", "Exercise the parser at scale.", "", "## 📋 Achievements", ""]
    forms = ["**Achievement {n}**: {t}", "**Achievement {n}: {t}** ⏱️ 2-3 hours", "### Achievement {n}: {t} (2-3h)"]
    for i, n in enumerate(nums):
        out.append(forms[i % 3].format(n=n, t=f"Feature {n} of the synthetic plan"))
        out.append("")
        out.append("**Time**: 2-3 hours")
        for j in range(body_lines):
            k = j % 6
            if k == 0:
                out.append(f"- Deliverable {j}: a module that does part {j} (see Achievement {nums[max(0, i - 1)]})")
            elif k == 1:
                out.append("```python")
            elif k == 2:
                out.append(f"# Achievement {n}: inside a code fence, ignored {{braces}} $dollar")
            elif k == 3:
                out.append("```")
            elif k == 4:
                out.append(f"| {j} | row | value **bold** |")
            else:
                out.append("Prose that talks about the work, the tests and the risks of this achievement in detail.")
        out += ["", "---", ""]
    out += ["## 📝 Current Status & Handoff", "", f"**⏳ Next: Achievement {nums[0]}**", ""]
    return "\n".join(out) + "\n"


def plan_of_lines(lines: int, *, seed: int = 1) -> str:
    """A plan of about `lines` lines (hundreds of achievements for 10k+)."""
    achievements = max(2, lines // 40)
    return plan_text(achievements, body_lines=34, seed=seed)


def write_workspace(root: str, feature: str, text: str) -> str:
    """A workspace with one plan (and an empty feedbacks folder); returns the PLAN path."""
    folder = os.path.join(root, "work-space", "plans", feature)
    os.makedirs(os.path.join(folder, "subplans"), exist_ok=True)
    os.makedirs(os.path.join(folder, "execution", "feedbacks"), exist_ok=True)
    path = os.path.join(folder, f"PLAN_{feature}.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    old = 1_700_000_000  # written long ago: outside the cache's racy window
    for p in (path, folder, os.path.join(folder, "subplans"), os.path.join(folder, "execution"),
              os.path.join(folder, "execution", "feedbacks"), os.path.dirname(folder)):
        os.utime(p, (old, old))
    return path


# -- workspaces shaped like real ones, for the scale benchmark ---------------------------------------

OLD = 1_700_000_000  # mtime for written files: long ago, outside the cache's racy window


def work_doc(kind: str, feature: str, number: str, status: str, *, lines: int, executions: int = 0) -> str:
    """A SUBPLAN or EXECUTION_TASK of about `lines` lines, as real ones are laid out."""
    head = "SUBPLAN" if kind == "subplan" else "EXECUTION_TASK"
    out = [f"# {head}: {feature} achievement {number}", "", f"**Achievement**: {number}",
           f"**Status**: {status}", "**Created**: 2026-11-01", "", "## 🎯 Objective", ""]
    if executions:
        out += ["## 🔄 Active EXECUTION_TASKs", "", "| Execution | Objective | Status |", "| --- | --- | --- |"]
        out += [f"| {number.replace('.', '')}_{m:02d} | step {m} | 📋 Planned |" for m in range(1, executions + 1)]
        out.append("")
    i = 0
    while len(out) < lines:
        k = i % 5
        out.append(f"- Step {i}: change module part {i} and its tests" if k == 0 else
                   "```bash" if k == 1 else f"pytest tests/unit/test_part_{i}.py -q" if k == 2 else
                   "```" if k == 3 else "Notes on what was learned, what broke and what to watch for next time.")
        i += 1
    return "\n".join(out) + "\n"


def nn(number: str) -> str:
    return number.replace(".", "")


def write_real_shaped_plan(folder: str, feature: str, *, seed: int, loose: bool = False) -> str:
    """A 3,000-line PLAN with SUBPLANs, EXECUTION_TASKs, APPROVED and FIX files (flat beside a loose one).

    About 60 achievements; the first 8-12 have been worked on: all but the last
    two approved, one with a FIX, the last with an EXECUTION_TASK in progress.
    """
    rnd = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    text = plan_text(60, body_lines=44, seed=seed)
    plan_path = os.path.join(folder, f"PLAN_{feature}.md")
    files: dict[str, str] = {plan_path: text}
    nums = [f"{i // 12}.{i % 12 + 1}" for i in range(60)]
    worked = 8 + rnd.randrange(5)
    sub = folder if loose else os.path.join(folder, "subplans")
    exe = folder if loose else os.path.join(folder, "execution")
    fb = folder if loose else os.path.join(folder, "execution", "feedbacks")
    tag = f"{feature}_" if loose else ""
    for i, n in enumerate(nums[:worked]):
        last = i == worked - 1
        execs = 1 + (i % 2)
        status = "🔄 In Progress" if last else "✅ Complete"
        files[os.path.join(sub, f"SUBPLAN_{feature}_{nn(n)}.md")] = work_doc(
            "subplan", feature, n, status, lines=110, executions=execs)
        for m in range(1, execs + 1):
            files[os.path.join(exe, f"EXECUTION_TASK_{feature}_{nn(n)}_{m:02d}.md")] = work_doc(
                "execution", feature, n, status if m == execs else "✅ Complete", lines=120)
        if i < worked - 2:
            files[os.path.join(fb, f"APPROVED_{tag}{nn(n)}.md")] = (
                f"# APPROVED: Achievement {n}\n\nReviewed; the work is complete.\n" + "- checked\n" * 15)
        elif not last:
            files[os.path.join(fb, f"FIX_{tag}{nn(n)}.md")] = (
                f"# FIX: Achievement {n}\n\n## Critical Issues\n\n1. A test fails.\n\n## Minor Issues\n\n1. Naming.\n")
    for path, body in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(body)
    return plan_path


def write_scale_workspace(root: str, plans: int) -> list[str]:
    """A workspace of `plans` real-shaped plans: most in feature folders, some in grouping folders
    (two levels deep among them), a few loose PLAN files beside grouped plan folders. Returns the PLAN paths."""
    base = os.path.join(root, "work-space", "plans")
    out = []
    for i in range(plans):
        feature = f"FEAT-{i:04d}"
        if i % 25 == 3:
            out.append(write_real_shaped_plan(os.path.join(base, "a_paused"), f"LOOSE-{i:04d}", seed=i, loose=True))
            continue
        group = "a_paused" if i % 10 == 1 else "a_real-use-cases/2025" if i % 10 == 2 else ""
        out.append(write_real_shaped_plan(os.path.join(base, group, feature), feature, seed=i))
    for dirpath, dirnames, filenames in os.walk(base):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (OLD, OLD))
        os.utime(dirpath, (OLD, OLD))
    return out
