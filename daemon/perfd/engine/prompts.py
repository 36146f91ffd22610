"""Render the prompt for a plan's next step from templates.

Templates are markdown with `{{name}}` placeholders. Rendering is one regex
pass that inserts values verbatim: plan text full of braces, dollars or
`{{...}}` never gets re-expanded or raises, and an unknown placeholder in a
workspace's own template is left as it is and reported.

A workspace overrides a template by putting a file of the same name in
`.perfd/templates/` (for example `.perfd/templates/fix_pending.md`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

from perfd.engine.plan_parser import nn_of
from perfd.engine.workspace import display_path
from perfd.engine.types import AchievementStatus, FeedbackDoc, PlanStatus, Problem, WorkDoc

_PLACEHOLDER_RE = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\}\}")
_BUILTIN_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "templates")
TEMPLATE_NAMES = (
    "fix_pending", "no_subplan", "subplan_complete", "subplan_no_execution",
    "active_execution", "create_next_execution", "subplan_all_executed", "plan_complete",
)


def render(template: str, values: Mapping[str, str]) -> tuple[str, list[str]]:
    """(text, unknown placeholder names)."""
    unknown: list[str] = []

    def sub(m: re.Match[str]) -> str:
        v = values.get(m.group(1))
        if v is None:
            unknown.append(m.group(1))
            return m.group(0)
        return v

    return _PLACEHOLDER_RE.sub(sub, template), unknown


class Templates:
    """Built-in templates, overridden per workspace; read through the engine's file cache."""

    def __init__(self, root: str, read: Callable[[str], str], *,
                 outside: Callable[[str], Problem] | None = None) -> None:
        self.root = os.path.realpath(root)
        self.override_dir = os.path.join(self.root, ".perfd", "templates")
        self._read = read
        self._outside = outside

    def get(self, name: str) -> tuple[str, str, list[Problem]]:
        """(template text, path it came from, problems).

        An override that resolves outside the workspace (it, `.perfd` or
        `templates` a symlink leading out) is not read: a cloned repository must
        not be able to put a user's own files into a prompt sent to a model.
        """
        override = os.path.join(self.override_dir, name + ".md")
        real = os.path.realpath(override)
        problems: list[Problem] = []
        if real.startswith(self.root + os.sep):
            try:
                return self._read(override), override, problems
            except OSError:
                pass
        elif os.path.exists(override) and self._outside is not None:
            problems.append(self._outside(override))
        path = os.path.join(_BUILTIN_DIR, name + ".md")
        return self._read(path), path, problems


def _rel(root: str, path: str | None) -> str:
    return display_path(root, path) if path else "(none)"


def _bullets(items: list[str], limit: int = 6000) -> str:
    if not items:
        return "(none listed)"
    out: list[str] = []
    size = 0
    for item in items:
        block = "\n".join("  " + ln if i else "- " + ln.lstrip("0123456789. ") for i, ln in enumerate(item.split("\n")))
        size += len(block)
        if size > limit:
            out.append(f"- ... ({len(items) - len(out)} more in the review file)")
            break
        out.append(block)
    return "\n".join(out)


class PromptContext:
    """What a template may refer to, computed for one achievement."""

    def __init__(self, root: str, status: PlanStatus, ach: AchievementStatus | None, plan_folder: str,
                 fix_doc: FeedbackDoc | None, active_doc: WorkDoc | None, *, flat: bool = False) -> None:
        self.root = root
        # A loose plan (in a folder it shares) keeps its files flat beside it, carrying its name: write
        # them there, where perfd looks, not in subplans/ and execution/ folders it never reads.
        self.flat = flat
        self.status = status
        self.ach = ach
        self.plan_folder = plan_folder
        self.fix_doc = fix_doc
        self.active_doc = active_doc

    def write_path(self) -> str | None:
        a = self.ach
        if a is None:
            return None
        feature = self.status.plan
        nn = nn_of(a.number)
        if a.state == "no_subplan":
            return os.path.join(self._sub("subplans"), f"SUBPLAN_{feature}_{nn}.md")
        if a.state in ("subplan_no_execution", "create_next_execution"):
            return os.path.join(self._sub("execution"), f"EXECUTION_TASK_{feature}_{nn}_{self._next_mm()}.md")
        if a.state == "fix_pending":
            return self._resolution()
        return None

    def _sub(self, folder: str) -> str:
        return self.plan_folder if self.flat else os.path.join(self.plan_folder, folder)

    def _resolution(self) -> str:
        """The FIX's resolution: beside the FIX file it answers, named after it (`FIX_31_RESOLUTION.md`)."""
        a = self.ach
        assert a is not None
        if a.fix:
            return a.fix[: -len(".md")] + "_RESOLUTION.md" if a.fix.endswith(".md") else a.fix + "_RESOLUTION.md"
        feedbacks = self.plan_folder if self.flat else os.path.join(self.plan_folder, "execution", "feedbacks")
        return os.path.join(feedbacks, f"FIX_{nn_of(a.number)}_RESOLUTION.md")

    def _next_mm(self) -> str:
        a = self.ach
        assert a is not None
        mms = []
        for p in a.executions:
            m = re.search(r"_(\d{2,3})\.md$", p)
            if m:
                mms.append(int(m.group(1)))
        return f"{(max(mms) + 1) if mms else 1:02d}"

    def values(self) -> dict[str, str]:
        s = self.status
        v: dict[str, str] = {
            "plan": s.plan,
            "plan_title": s.title or s.plan,
            "plan_path": _rel(self.root, s.path),
            "done": str(s.done),
            "total": str(s.total),
            "source": s.source,
        }
        a = self.ach
        if a is None:
            lines = [f"- ✅ {x.number}: {x.title}" for x in s.achievements]
            v["summary"] = "Achievements:\n" + "\n".join(lines) if lines else "(no achievements)"
            v["archive_line"] = ""
            return v
        nn = nn_of(a.number)
        feedbacks = self.plan_folder if self.flat else os.path.join(self.plan_folder, "execution", "feedbacks")
        body = f"{a.body_line}-{a.body_end}" if a.body_line else (
            f"{a.index_line} (index entry; no body section)" if a.index_line else "(not found)")
        deps = ", ".join(a.dependencies)
        v.update({
            "number": a.number,
            "nn": nn,
            "title": a.title,
            "state": a.state,
            "body_lines": body,
            "subplan": _rel(self.root, a.subplan),
            "subplan_name": os.path.basename(a.subplan) if a.subplan else "(none)",
            "executions": ", ".join(_rel(self.root, e) for e in a.executions) or "(none)",
            "active_execution": _rel(self.root, a.active_execution),
            "active_status": (self.active_doc.status_text or self.active_doc.status) if self.active_doc else "(unknown)",
            "fix": _rel(self.root, a.fix),
            "fix_resolution": _rel(self.root, self._resolution()),
            "fix_file": _rel(self.root, os.path.join(feedbacks, f"FIX_{nn}.md")),
            "approved": _rel(self.root, os.path.join(feedbacks, f"APPROVED_{nn}.md")),
            "critical": _bullets(self.fix_doc.critical) if self.fix_doc else "(none listed)",
            "minor": _bullets(self.fix_doc.minor) if self.fix_doc else "(none listed)",
            "dependencies": deps or "(none)",
            "dependencies_line": f"\nIt depends on achievements {deps}, which are complete." if deps else "",
            "execution_id": f"{nn}_{self._next_mm()}",
            "planned": str(a.planned_executions or len(a.executions)),
        })
        wp = self.write_path()
        v["write_path"] = _rel(self.root, wp) if wp else "(none)"
        return v


def build_prompt(templates: Templates, ctx: PromptContext) -> tuple[str, list[Problem]]:
    name = ctx.ach.state if ctx.ach is not None else "plan_complete"
    text, origin, problems = templates.get(name)
    out, unknown = render(text, ctx.values())
    problems += [Problem("template-placeholder", f"unknown placeholder {{{{{u}}}}} in {origin}", "warning", origin)
                for u in dict.fromkeys(unknown)]
    return out.rstrip("\n") + "\n", problems
