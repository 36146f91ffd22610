"""What `perfd mcp` offers an agent, independent of the MCP SDK: the tools' typed arguments and results,
the command line each one asks, and the text and structured content it answers with.

Every tool is read only: it asks a `perfd generate` or `perfd status` command line (perfd.agent.answers),
so its text is what the CLI prints and its errors are the CLI's one-line messages. Long lists (a
workspace of 1,500 plans) come in pages of PAGE, behind an opaque cursor.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import msgspec

from perfd.engine.types import AchievementStatus, GenerateResult, PlanStatus, PlanSummary, WorkspaceStatus
from perfd.safetext import shown

PAGE = 200  # plans per page of the status tool and of the prompts list


class BadArguments(ValueError):
    """A tool's arguments are not what its input schema says (one line)."""


# --- arguments ------------------------------------------------------------------------------------


class StatusArgs(msgspec.Struct, forbid_unknown_fields=True):
    cursor: str | None = None


class NextStepArgs(msgspec.Struct, forbid_unknown_fields=True):
    plan: str | None = None


class AchievementArgs(msgspec.Struct, forbid_unknown_fields=True):
    achievement: str
    plan: str | None = None


class PlanArgs(msgspec.Struct, forbid_unknown_fields=True):
    plan: str | None = None


# --- structured results ---------------------------------------------------------------------------


class StatusPage(msgspec.Struct):
    root: str
    plans: list[PlanSummary]
    total: int  # plans in the workspace
    next_cursor: str | None = None  # pass as `cursor` for the next page; None on the last


class Step(msgspec.Struct):
    plan: str
    plan_path: str
    achievement: str | None
    state: str
    source: str
    write_path: str | None  # the file the prompt asks to be written, if any
    parallel_options: list[str]


class Achievements(msgspec.Struct):
    plan: str
    path: str
    title: str
    state: str
    next: str | None
    done: int
    total: int
    achievements: list[AchievementStatus]


class Tool(NamedTuple):
    name: str
    title: str
    description: str
    args: type[msgspec.Struct]
    result: type[msgspec.Struct]


_PLAN = ("`plan`: a plan's name (with or without @) or the path of its PLAN file; "
         "omitted, the workspace's only or default plan.")
TOOLS = (
    Tool("status", "Workspace status",
         "Every plan in the perfd workspace: progress (done/total), the next achievement and its state. "
         f"Read only. Pages of {PAGE} plans: pass `next_cursor` back as `cursor` for more.",
         StatusArgs, StatusPage),
    Tool("next_step", "Next step's prompt",
         "The prompt for a plan's next step, exactly as `perfd generate --next` prints it: follow it as your "
         "instructions. Structured content gives the achievement, its state and the file the step should "
         f"write (write_path). Read only: nothing is written or sent to a model. {_PLAN}",
         NextStepArgs, Step),
    Tool("achievement_prompt", "An achievement's prompt",
         "The prompt for one achievement of a plan (`achievement`, e.g. \"2.1\"), as `perfd generate @PLAN "
         f"2.1` prints it, with its state and write path as structured content. Read only. {_PLAN}",
         AchievementArgs, Step),
    Tool("achievements", "A plan's achievements",
         "Every achievement of a plan: number, title, state, whether it is ready (its dependencies done), "
         f"and its files. Read only. {_PLAN}",
         PlanArgs, Achievements),
)


def object_schema(t: type[msgspec.Struct]) -> dict[str, object]:
    """A JSON Schema of `t` with an object at its top, as MCP wants inputSchema and outputSchema (msgspec's
    puts a $ref there)."""
    (top,), defs = msgspec.json.schema_components([t], ref_template="#/$defs/{name}")
    name = str(top["$ref"]).rsplit("/", 1)[-1]
    # Draft 7 said outright: what msgspec writes is that too, and a client that checks each answer against
    # the schema (the MCP SDK's checks the schema itself first, every call) does it ~5x faster than for 2020-12.
    schema: dict[str, object] = {"$schema": "http://json-schema.org/draft-07/schema#", **defs.pop(name)}
    if defs:
        schema["$defs"] = defs
    return schema


def decode_args(t: type[msgspec.Struct], arguments: object) -> msgspec.Struct:
    try:
        return msgspec.convert(arguments if arguments is not None else {}, t)
    except msgspec.ValidationError as exc:
        raise BadArguments(f"perfd: bad arguments: {exc}") from None


def plan_ref(plan: str) -> str:
    """A plan as the CLI takes it: a bare name gets its @ (so "2" is a plan, not an achievement)."""
    plan = plan.strip()
    if plan.startswith("@") or os.sep in plan or plan.endswith(".md"):
        return plan
    return "@" + plan


def argv_for(args: msgspec.Struct) -> list[str]:
    """The command line a tool's arguments ask."""
    if isinstance(args, StatusArgs):
        return ["status", "--json"]
    if isinstance(args, NextStepArgs):
        return ["generate", "--next", "--json"] + ([plan_ref(args.plan)] if args.plan else [])
    if isinstance(args, AchievementArgs):
        # after `--`: an achievement (or a plan) a model wrote that starts with "-" is not taken as an option
        return ["generate", "--json", "--"] + ([plan_ref(args.plan)] if args.plan else []) + [args.achievement]
    if isinstance(args, PlanArgs):
        return ["status", "--json"] + ([plan_ref(args.plan)] if args.plan else [])
    raise TypeError(type(args).__name__)


class Result(NamedTuple):
    text: str
    structured: msgspec.Struct


def offset_of(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise BadArguments("perfd: bad arguments: `cursor` is not one this server gave")
    return int(cursor)


def page(items: int, offset: int) -> tuple[int, str | None]:
    """(end of the page starting at offset, the cursor of the next page or None)."""
    end = min(items, offset + PAGE)
    return end, (str(end) if end < items else None)


def status_line(p: PlanSummary) -> str:
    return f"@{shown(p.plan)}  {p.done}/{p.total}  next: {p.next or '-'} ({p.state})" + \
        (f"  pending fixes: {', '.join(p.pending_fixes)}" if p.pending_fixes else "")


def result_of(args: msgspec.Struct, stdout: str) -> Result:
    """A tool's answer from the command's JSON output."""
    if isinstance(args, StatusArgs):
        ws = msgspec.json.decode(stdout, type=WorkspaceStatus)
        start = offset_of(args.cursor)
        end, cursor = page(len(ws.plans), start)
        shown_plans = ws.plans[start:end]
        lines = [status_line(p) for p in shown_plans] or [f"no plans under {shown(ws.root)}"]
        if cursor:
            lines.append(f"(plans {start + 1}-{end} of {len(ws.plans)}: call again with cursor={cursor!r} for more)")
        return Result("\n".join(lines), StatusPage(root=ws.root, plans=shown_plans, total=len(ws.plans),
                                                   next_cursor=cursor))
    if isinstance(args, (NextStepArgs, AchievementArgs)):
        g = msgspec.json.decode(stdout, type=GenerateResult)
        return Result(g.prompt, Step(plan=g.plan, plan_path=g.plan_path, achievement=g.achievement, state=g.state,
                                     source=g.source, write_path=g.write_path, parallel_options=g.parallel_options))
    if isinstance(args, PlanArgs):
        st = msgspec.json.decode(stdout, type=PlanStatus)
        head = f"@{shown(st.plan)}: {shown(st.title)} — {st.done}/{st.total} done, next: {st.next or '-'} ({st.state})"
        lines = [head] + [f"{a.number}  {a.state}{'' if a.ready else ' (blocked)'}  {shown(a.title)}"
                          for a in st.achievements]
        return Result("\n".join(lines), Achievements(plan=st.plan, path=st.path, title=st.title, state=st.state,
                                                     next=st.next, done=st.done, total=st.total,
                                                     achievements=st.achievements))
    raise TypeError(type(args).__name__)


def to_builtins(s: msgspec.Struct) -> dict[str, object]:
    got = msgspec.to_builtins(s)
    if not isinstance(got, dict):
        raise TypeError(type(s).__name__)
    return got


# --- prompts: each plan's next step -------------------------------------------------------------

PROMPT_PREFIX = "next-"


def prompt_name(plan: str) -> str:
    return PROMPT_PREFIX + plan


def plan_of_prompt(name: str) -> str | None:
    return name[len(PROMPT_PREFIX):] if name.startswith(PROMPT_PREFIX) and len(name) > len(PROMPT_PREFIX) else None


def prompt_description(p: PlanSummary) -> str:
    what = f"achievement {p.next}" if p.next else "no achievement left"
    return f"Next step of @{shown(p.plan)}: {what} ({p.state}), {p.done}/{p.total} done — {shown(p.title)}"


def prompts_key(ws: WorkspaceStatus) -> tuple[tuple[str, str | None, str, int], ...]:
    """What the prompts list shows of each plan: a change in it is a list change."""
    return tuple((p.plan, p.next, p.state, p.done) for p in ws.plans)

