"""`perfd stats --history`: the model-call history, filtered, as text with per-day charts, CSV, Markdown or JSON.

Reads the SQLite history that `perfd run` records (perfd.llm.history); never
writes it, and a missing file is an empty history (not created). By default
only the calls made for this workspace count; `--all` counts every workspace's
(and the rows recorded before perfd kept the workspace).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import time
from collections.abc import Sequence

import msgspec

from perfd.app.columns import printable, table
from perfd.engine.errors import UsageError, UserError
from perfd.llm.history import Summary
from perfd.safetext import csv_cell, markdown_text

FORMATS = ("text", "csv", "markdown", "json")
GROUPINGS = (("by_plan", "plan"), ("by_day", "day"), ("by_outcome", "outcome"), ("by_model", "model"))
CHART_WIDTH = 80


class HistoryQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What `stats --history` was asked for."""

    path: str  # the history file
    workspace: str | None  # None: every workspace (--all, or no workspace found)
    plan: str | None = None
    model: str | None = None
    since: float | None = None  # unix time of --since's local midnight
    days: int = 30
    format: str = "text"


class HistoryReport(msgspec.Struct, frozen=True, kw_only=True):
    """The answer, as `--format json` prints it."""

    path: str
    workspace: str | None
    plan: str | None
    model: str | None
    since: str | None
    days: int
    by_plan: list[Summary]
    by_day: list[Summary]
    by_outcome: list[Summary]
    by_model: list[Summary]


def parse_since(text: str) -> float:
    """`--since 2026-11-01` (or an ISO date-time) as unix time; a UsageError (exit 2) otherwise."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r} is not a date", hint="give YYYY-MM-DD, e.g. --since 2026-11-01") from None
    return when.timestamp()  # naive: local time, as the history's days are


def parse_days(value: int) -> int:
    if value < 1:
        raise UsageError("--days takes a whole number from 1 up", hint="perfd stats --history --days 7")
    return value


def query(q: HistoryQuery) -> HistoryReport:
    from perfd.llm import Filter, open_history

    groups: dict[str, list[Summary]] = {key: [] for key, _ in GROUPINGS}
    plan = q.plan[1:] if q.plan and q.plan.startswith("@") else q.plan
    if os.path.exists(q.path):
        where = Filter(workspace=q.workspace, plan=plan, model=q.model, since=q.since)
        import sqlite3

        from perfd.safetext import shown

        try:
            history = open_history(q.path)  # for reading only: works in a read-only state folder
        except sqlite3.Error as exc:
            raise UserError(f"cannot read the model-call history {shown(q.path)}: {exc}") from None
        try:
            groups = {"by_plan": history.by_plan(where=where), "by_day": history.by_day(days=q.days, where=where),
                      "by_outcome": history.by_outcome(where=where), "by_model": history.by_model(where=where)}
        except sqlite3.Error as exc:  # damaged, locked, or from an older perfd: a reader repairs nothing
            raise UserError(f"cannot read the model-call history {shown(q.path)}: {exc}") from None
        finally:
            history.close()
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(q.since)) if q.since is not None else None
    return HistoryReport(path=q.path, workspace=q.workspace, plan=plan, model=q.model, since=since, days=q.days,
                         **{k: list(v) for k, v in groups.items()})


def render(q: HistoryQuery, *, tty: bool = False, width: int = CHART_WIDTH) -> str:
    report = query(q)
    if q.format == "json":
        from perfd.safetext import encode_json

        return encode_json(report).decode() + "\n"  # valid JSON whatever bytes the names hold
    if q.format == "csv":
        return render_csv(report)
    if q.format == "markdown":
        return render_markdown(report)
    return render_text(report, tty=tty, width=width)


# --- shared -----------------------------------------------------------------------


# tokens/cost: paid (answered by the model); saved: served by the response cache instead.
_COLUMNS = ("calls", "hits", "errors", "tokens", "saved tok", "cost", "saved cost", "avg ms")


def _cells(g: Summary) -> list[str]:
    return [str(g.calls), str(g.cache_hits), str(g.errors), str(g.prompt_tokens + g.completion_tokens),
            str(g.tokens_saved), cost_text(g.cost, g.unknown_cost_calls),
            cost_text(g.cost_saved, g.unknown_saved_calls),
            f"{g.avg_latency_ms:.1f}"]


def cost_text(cost: float | None, unknown: int, digits: int = 4) -> str:
    """A cost (or a cost saved) some of whose calls had no known price says so: "unknown", or
    "≥ X (N calls of unknown cost)"."""
    if cost is None:
        return "unknown"
    if unknown:
        return f"≥ {cost:.{digits}f} ({unknown} call{'s' if unknown != 1 else ''} of unknown cost)"
    return f"{cost:.{digits}f}"


def _name(g: Summary) -> str:
    return "(none)" if g.group is None else g.group


def _scope(r: HistoryReport) -> str:
    parts = [f"workspace {r.workspace}" if r.workspace else "every workspace"]
    if r.plan:
        parts.append(f"plan {r.plan}")
    if r.model:
        parts.append(f"model {r.model}")
    if r.since:
        parts.append(f"since {r.since}")
    return ", ".join(parts)


# --- text ---------------------------------------------------------------------------


_TTY_RAMP = " ▁▂▃▄▅▆▇█"
_PLAIN_RAMP = " .:-=+*#%@"


def spark(values: Sequence[float], *, tty: bool, top: float | None = None) -> str:
    """One character per value, scaled to `top` (default: the largest); a zero is a blank."""
    ramp = _TTY_RAMP if tty else _PLAIN_RAMP
    top = max(values, default=0.0) if top is None else top
    if top <= 0:
        return " " * len(values)
    steps = len(ramp) - 1
    return "".join(ramp[0] if v <= 0 else ramp[max(1, round(v / top * steps))] for v in values)


def day_series(by_day: Sequence[Summary], days: int, *, now: float | None = None) -> list[tuple[str, Summary | None]]:
    """The last `days` local days, oldest first, each with its Summary (None: no calls that day)."""
    known = {_name(g): g for g in by_day}
    today = dt.date.fromtimestamp(now if now is not None else time.time())
    span = [(today - dt.timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
    return [(d, known.get(d)) for d in span]


def charts(by_day: Sequence[Summary], days: int, *, tty: bool, width: int = CHART_WIDTH,
           now: float | None = None) -> list[str]:
    """Per-day sparklines of calls, tokens, cost and hit rate, within `width` columns."""
    series = day_series(by_day, days, now=now)
    label_w, tail_w = 10, 22
    room = max(7, min(width, CHART_WIDTH) - label_w - tail_w - 4)
    if len(series) > room:  # more days than columns: keep the latest
        series = series[-room:]

    def get(attr: str) -> list[float]:
        out = []
        for _, g in series:
            if g is None:
                out.append(0.0)
            elif attr == "tokens":
                out.append(float(g.prompt_tokens + g.completion_tokens))
            elif attr == "hit rate":
                out.append(g.cache_hits / g.calls if g.calls else 0.0)
            elif attr == "cost":
                out.append(g.cost or 0.0)  # unknown: drawn as nothing, said in the tail
            else:
                out.append(float(getattr(g, attr)))
        return out

    first, last = series[0][0], series[-1][0]
    lines = [f"{'per day':{label_w}}   {first:<{len(series) - len(last)}}{last}"
             if len(series) >= len(first) + len(last) + 1 else f"{'per day':{label_w}}   {first} .. {last}"]
    for label, attr, fmt in (("calls", "calls", "{:.0f}"), ("tokens", "tokens", "{:.0f}"),
                             ("cost", "cost", "{:.4f}"), ("hit rate", "hit rate", "{:.0%}")):
        values = get(attr)
        total = sum(values) if attr != "hit rate" else None
        if attr == "hit rate":
            calls = sum(g.calls for _, g in series if g is not None)
            hits = sum(g.cache_hits for _, g in series if g is not None)
            tail = f"{hits / calls:.0%} overall" if calls else "no calls"
        elif attr == "cost":
            unknown = sum(g.unknown_cost_calls for _, g in series if g is not None)
            known = any(g.cost is not None for _, g in series if g is not None)
            tail = f"max {fmt.format(max(values))} · sum {cost_text(total if known or not unknown else None, unknown)}"
        else:
            tail = f"max {fmt.format(max(values))} · sum {fmt.format(total)}"
        bar = spark(values, tty=tty, top=1.0 if attr == "hit rate" else None)  # a rate's scale is 0..100%
        edge = "│" if tty else "|"
        lines.append(f"{label:{label_w}}  {edge}{bar}{edge} {tail}")
    return lines


def render_text(r: HistoryReport, *, tty: bool = False, width: int = CHART_WIDTH) -> str:
    total = sum(g.calls for g in r.by_outcome)
    head = f"model calls: {total} ({printable(_scope(r))}) in {printable(r.path)}"
    if not total:
        return head + " (none recorded yet" + ("" if r.workspace is None else "; --all shows every workspace") + ")\n"
    lines = [head, ""]
    lines += charts(r.by_day, r.days, tty=tty, width=width)
    for key, label in GROUPINGS:
        groups = getattr(r, key)
        if not groups:
            continue
        lines.append("")
        title = f"{label.upper()}" + (f" (last {r.days} days)" if key == "by_day" else "")
        rows = [[title, *(c.upper() for c in _COLUMNS)]]
        rows += [[printable(_name(g)), *_cells(g)] for g in groups]
        lines += table(rows, right_from=1)
    return "\n".join(lines) + "\n"


# --- CSV and Markdown ---------------------------------------------------------------


def render_csv(r: HistoryReport) -> str:
    """One header row, then one row per group; `grouping` says which question the row answers."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # RFC 4180, what spreadsheets expect
    w.writerow(["grouping", "group", "calls", "cache_hits", "errors", "prompt_tokens", "completion_tokens",
                "tokens_saved", "cost", "cost_saved", "avg_latency_ms", "first_call", "last_call",
                "unknown_cost_calls", "unknown_saved_calls"])
    for key, label in GROUPINGS:
        for g in getattr(r, key):
            w.writerow([label, csv_cell(_name(g)), g.calls, g.cache_hits, g.errors, g.prompt_tokens,
                        g.completion_tokens, g.tokens_saved, "unknown" if g.cost is None else f"{g.cost:.6f}",
                        "unknown" if g.cost_saved is None else f"{g.cost_saved:.6f}", f"{g.avg_latency_ms:.1f}",
                        _iso(g.first_ts), _iso(g.last_ts), g.unknown_cost_calls, g.unknown_saved_calls])
    return buf.getvalue()


def _iso(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))


def render_markdown(r: HistoryReport) -> str:
    """Markdown tables, one per question, to paste into a pull request."""
    total = sum(g.calls for g in r.by_outcome)
    out = [f"**perfd model calls**: {total} ({markdown_text(_scope(r))})", ""]
    for key, label in GROUPINGS:
        groups = getattr(r, key)
        if not groups:
            continue
        out.append(f"| {label} | " + " | ".join(_COLUMNS) + " |")
        out.append("| --- |" + " ---: |" * len(_COLUMNS))
        out += [f"| {markdown_text(_name(g))} | " + " | ".join(_cells(g)) + " |" for g in groups]
        out.append("")
    return "\n".join(out)
