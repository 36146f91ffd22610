"""The engine's types: parsed documents, its results (status, generate) and the cache's stats.

msgspec Structs, so the CLI, the socket protocol (whose own messages are in
perfd.wire.protocol), the LSP and the JSON Schemas in `schemas/` speak the
same types. Line numbers are 1-based and inclusive (as people read them);
LSP adapters subtract one.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Severity = Literal["error", "warning", "info"]

AchievementStateName = Literal[
    "fix_pending",
    "no_subplan",
    "subplan_complete",
    "subplan_no_execution",
    "active_execution",
    "create_next_execution",
    "subplan_all_executed",
    "complete",
]
PlanStateName = Literal[AchievementStateName, "plan_complete"]
Source = Literal["review files", "plan marks"]
WorkStatus = Literal["complete", "in_progress", "not_started"]


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """Something wrong or odd in the input, reported instead of raised."""

    code: str
    message: str
    severity: Severity = "warning"
    path: str | None = None
    line: int | None = None
    end_line: int | None = None
    column: int | None = None  # 0-based, where known
    end_column: int | None = None


# --- parsed documents -------------------------------------------------------


class Section(msgspec.Struct, frozen=True):
    title: str
    key: str  # normalised: lower case, no emoji or punctuation
    line: int
    end_line: int


class Achievement(msgspec.Struct, frozen=True, omit_defaults=True):
    number: str  # "3.1", "3.10", "3.5.1"
    title: str
    priority: str | None = None  # the bold priority group it is listed under
    index_line: int | None = None
    body_line: int | None = None  # the first body header
    body_end: int | None = None  # the body section ends here (inclusive)
    body_title: str | None = None
    effort: str | None = None  # "2-3h", "4-6 hours"
    time: str | None = None  # **Time**: field in the body
    actual: str | None = None  # **Actual**: field in the body
    marked_done: bool = False  # a ✅ on its index line or body header


class DoneMark(msgspec.Struct, frozen=True):
    """Evidence in the plan's own text that an achievement is complete."""

    number: str
    kind: str  # "index", "body", "checked", "tracking", "log", "all-done"
    line: int


class PlanDoc(msgspec.Struct, frozen=True, omit_defaults=True):
    path: str
    title: str = ""
    metadata: dict[str, str] = {}
    sections: list[Section] = []
    achievements: list[Achievement] = []
    priorities: list[tuple[str, int]] = []  # (priority line text, line)
    handoff_next: str | None = None
    handoff_line: int | None = None
    archive_location: str | None = None
    done_marks: list[DoneMark] = []
    all_done_line: int | None = None
    line_count: int = 0
    problems: list[Problem] = []
    not_plan: str = ""  # why a document named PLAN_ is no plan (a completion summary), when it says so


class WorkDoc(msgspec.Struct, frozen=True, omit_defaults=True):
    """A SUBPLAN or EXECUTION_TASK file."""

    path: str
    kind: Literal["subplan", "execution"]
    title: str = ""
    achievement: str | None = None  # from the file's own metadata or title
    status: WorkStatus = "not_started"
    status_text: str = ""
    status_line: int | None = None
    planned_executions: list[str] = []  # "01_01", "01_02" from the Active EXECUTION_TASKs table
    problems: list[Problem] = []


class FeedbackDoc(msgspec.Struct, frozen=True, omit_defaults=True):
    """An APPROVED_<NN>.md or FIX_<NN>.md review file."""

    path: str
    kind: Literal["approved", "fix"]
    achievement: str | None = None  # named in its title, when it does
    critical: list[str] = []
    minor: list[str] = []
    problems: list[Problem] = []


class ParallelAchievement(msgspec.Struct, frozen=True):
    achievement_id: str
    dependencies: list[str] = []
    title: str = ""
    level: int | None = None  # None when on a cycle or depending on one


class ParallelGraph(msgspec.Struct, frozen=True, omit_defaults=True):
    path: str
    achievements: list[ParallelAchievement] = []
    levels: list[list[str]] = []
    problems: list[Problem] = []


# --- engine results -----------------------------------------------------------


class AchievementStatus(msgspec.Struct, frozen=True, omit_defaults=True):
    number: str
    title: str
    state: AchievementStateName
    priority: str | None = None
    subplan: str | None = None
    executions: list[str] = []
    planned_executions: int | None = None
    active_execution: str | None = None
    fix: str | None = None
    approved: str | None = None
    dependencies: list[str] = []
    ready: bool = True  # all dependencies complete
    index_line: int | None = None
    body_line: int | None = None
    body_end: int | None = None
    decided_by: str = ""  # the file or mark that decided its state (`status --explain`)


class PlanStatus(msgspec.Struct, frozen=True, omit_defaults=True):
    plan: str  # the feature name, used as @NAME
    path: str
    title: str
    source: Source
    state: PlanStateName
    next: str | None
    done: int
    total: int
    achievements: list[AchievementStatus] = []
    pending_fixes: list[str] = []
    parallel_options: list[str] = []
    awaiting_review: list[str] = []
    handoff_next: str | None = None
    problems: list[Problem] = []
    not_plan: str = ""  # see PlanDoc.not_plan


class GenerateResult(msgspec.Struct, frozen=True):
    plan: str
    plan_path: str
    achievement: str | None
    state: PlanStateName
    source: Source
    prompt: str
    parallel_options: list[str]
    problems: list[Problem]
    write_path: str | None = None  # the file the prompt asks the model to write, if any


class PlanSummary(msgspec.Struct, frozen=True, omit_defaults=True):
    plan: str
    path: str
    title: str
    state: PlanStateName
    next: str | None
    done: int
    total: int
    source: Source
    pending_fixes: list[str] = []
    parallel_options: list[str] = []
    problem_count: int = 0  # problems other than info-level ones (PlanStatus lists them)
    group: str = ""  # the grouping folders it sits in under the plans folder ("a_paused"), "/"-joined
    not_plan: str = ""  # see PlanDoc.not_plan: listed as "not a plan: why", never as a plan
    label: str = ""  # how to name it when another plan has the same name (`@archive/NAME`); "" when unique


class WorkspaceStatus(msgspec.Struct, frozen=True):
    root: str
    plans: list[PlanSummary]
    problems: list[Problem]
    plans_dir: str = ""  # where plans are found: a view groups them by the folders below it


# --- stats ----------------------------------------------------------------------


class CacheStats(msgspec.Struct, frozen=True):
    entries: int
    capacity: int
    hits: int
    misses: int
    evictions: int
    expirations: int
    invalidations: int
    hit_rate: float
    lookup_p50_us: float
    lookup_p99_us: float
    trusted_hits: int = 0  # hits served on the watcher's word, without a stat
    stat_checks: int = 0  # hits validated by stat (no healthy watcher, or not yet vouched for)
    persisted_hits: int = 0  # misses answered from the persistent parse store instead of parsing
    trusting: bool = False  # a healthy watcher vouches for the plans folder (else: validation by stat)
    answers_stat_checked: int = 0  # memoised answers validated by stat (the fallback when no watcher vouches)
    trust_restarts: int = 0  # times the watcher (re)started vouching: start, restart, possible overflow


class LatencyStats(msgspec.Struct, frozen=True):
    count: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
