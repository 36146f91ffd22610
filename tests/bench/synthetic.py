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
