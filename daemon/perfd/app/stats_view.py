"""How perfd shows its numbers: the daemon's stats as text, JSON and Prometheus, and the model-call history."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import msgspec

from perfd.llm.stats import LLMStats
from perfd.wire.protocol import StatsSnapshot


# --- renderings -------------------------------------------------------------------


def render_json(s: StatsSnapshot) -> str:
    return msgspec.json.encode(s).decode() + "\n"


def render_text(s: StatsSnapshot) -> str:
    c = s.cache
    lines = [
        f"perfd {s.version} daemon pid {s.pid} for {s.root}",
        f"uptime {s.uptime_s:.1f} s · rss {s.rss_bytes / 1048576:.1f} MiB · connections {s.connections}"
        f" · subscribers {s.subscribers}",
        f"cache: {c.entries}/{c.capacity} entries · hits {c.hits} · misses {c.misses} · hit rate {c.hit_rate:.1%}"
        f" · evictions {c.evictions} · expirations {c.expirations} · invalidations {c.invalidations}"
        f" · answer memo hits {s.memo_hits}",
        f"watcher: {s.watcher_events} events in {s.watcher_batches} batches",
    ]
    if s.llm is not None:
        llm = s.llm
        llm_lat = f"p50 {llm.latency_p50_ms:.0f} ms · p95 {llm.latency_p95_ms:.0f} ms" if llm.latency_p50_ms is not None else "no calls"
        lines += [
            f"model: {llm.model} at {llm.base_url} · breaker {llm.breaker_state} (opened {llm.breaker_opened}x)",
            f"  calls {llm.calls} · requests {llm.requests} · retries {llm.retries} · 429s {llm.rate_limited}"
            f" · errors {sum(llm.errors.values())} · in flight {llm.in_flight} · connections opened {llm.connections_opened}",
            f"  rate window: {llm.window_requests} requests, {llm.window_tokens} tokens · waited {llm.rate_limit_wait_s:.1f} s",
            f"  response cache: hits {llm.cache_hits} · misses {llm.cache_misses} · tokens saved {llm.tokens_saved}"
            f" · cost saved {llm.cost_saved:.4f} · {llm_lat}",
        ]
        lines += team_lines(llm)  # --- team (shared limits through Redis) ---
    if s.methods:
        rows = [["METHOD", "REQUESTS", "ERRORS", "P50 ms", "P95 ms", "P99 ms", "MAX ms"]]
        for m in s.methods:
            lat = m.latency
            rows.append([m.method, str(m.requests), str(m.errors), f"{lat.p50_ms:.3f}", f"{lat.p95_ms:.3f}",
                         f"{lat.p99_ms:.3f}", f"{lat.max_ms:.3f}"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines.append("")
        lines.extend("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)
    return "\n".join(lines) + "\n"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_prometheus(s: StatsSnapshot) -> str:
    """Prometheus text exposition format 0.0.4."""
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP perfd_{name} {help_}")
        out.append(f"# TYPE perfd_{name} {kind}")
        for labels, value in samples:
            out.append(f"perfd_{name}{labels} {value:g}" if isinstance(value, float) else f"perfd_{name}{labels} {value}")

    c = s.cache
    metric("uptime_seconds", "gauge", "Seconds since the daemon started.", [("", s.uptime_s)])
    metric("resident_memory_bytes", "gauge", "Resident set size.", [("", s.rss_bytes)])
    metric("connections", "gauge", "Open connections.", [("", s.connections)])
    metric("subscribers", "gauge", "Connections subscribed to plan changes.", [("", s.subscribers)])
    metric("cache_entries", "gauge", "Entries in the stat cache.", [("", c.entries)])
    metric("cache_hits_total", "counter", "Stat cache hits.", [("", c.hits)])
    metric("cache_misses_total", "counter", "Stat cache misses.", [("", c.misses)])
    metric("cache_hit_rate", "gauge", "Hits / (hits + misses).", [("", float(c.hit_rate))])
    metric("cache_evictions_total", "counter", "LRU evictions.", [("", c.evictions)])
    metric("cache_expirations_total", "counter", "TTL expirations.", [("", c.expirations)])
    metric("watcher_events_total", "counter", "File change events seen by the watcher.", [("", s.watcher_events)])
    metric("requests_total", "counter", "Requests per method.",
           [(f'{{method="{_esc(m.method)}"}}', m.requests) for m in s.methods])
    metric("errors_total", "counter", "Error responses per method.",
           [(f'{{method="{_esc(m.method)}"}}', m.errors) for m in s.methods])
    lat: list[tuple[str, float]] = []
    for m in s.methods:
        for q, v in (("0.5", m.latency.p50_ms), ("0.95", m.latency.p95_ms), ("0.99", m.latency.p99_ms)):
            lat.append((f'{{method="{_esc(m.method)}",quantile="{q}"}}', v / 1000.0))
    metric("request_duration_seconds", "summary", "Request latency per method (recent window).", lat)
    if s.llm is not None:
        llm = s.llm
        states = ("closed", "half_open", "open")
        metric("llm_calls_total", "counter", "Model calls (cache hits included).", [("", llm.calls)])
        metric("llm_requests_total", "counter", "HTTP requests sent to the model.", [("", llm.requests)])
        metric("llm_retries_total", "counter", "Retried attempts.", [("", llm.retries)])
        metric("llm_rate_limited_total", "counter", "429 responses.", [("", llm.rate_limited)])
        metric("llm_errors_total", "counter", "Failed calls by kind.",
               [(f'{{kind="{_esc(k)}"}}', v) for k, v in sorted(llm.errors.items())])
        metric("llm_breaker_state", "gauge", "1 for the circuit breaker's current state.",
               [(f'{{state="{st}"}}', int(llm.breaker_state == st)) for st in states])
        metric("llm_cache_hits_total", "counter", "Response cache hits.", [("", llm.cache_hits)])
        metric("llm_tokens_saved_total", "counter", "Tokens served from the response cache.", [("", llm.tokens_saved)])
        metric("llm_connections_opened_total", "counter", "TCP connections opened to the model.",
               [("", llm.connections_opened)])
        team_metrics(llm, metric)  # --- team (shared limits through Redis) ---
    return "\n".join(out) + "\n"


# --- team: shared limits, cache, breaker and budget through Redis ---------------------


def team_lines(llm: LLMStats) -> list[str]:
    """The team's part of `perfd stats` (cache levels, budget, and with [team] the shared view)."""
    lines: list[str] = []
    levels = llm.cache_hits_by_level
    if levels:
        lines.append("  cache hits by level: " + " · ".join(f"{k} {v}" for k, v in levels.items()))
    t = llm.team
    if t is None:
        if llm.budget_used_usd is not None:
            lines.append(f"  budget: ${llm.budget_used_usd:.4f} used today (UTC, this daemon)")
        return lines
    state = t.state.upper() if t.state == "down" else t.state
    lines.append(f"team: redis {_terminal(t.redis)} namespace {_terminal(t.namespace)} · {state}"
                 f" · fail {t.fail} · daemons {t.peers}")
    if t.state == "down":
        since = f" since {time.strftime('%H:%M:%S', time.localtime(t.down_since))}" if t.down_since else ""
        doing = ("running on local limits and cache" if t.fail == "open"
                 else "refusing model calls ([team] fail = \"closed\")")
        lines.append(f"  WARNING: REDIS DOWN{since}: {doing}; {_terminal(t.last_error or '')}")
    per_min = 60.0 / t.window_s if t.window_s else 1.0
    age = f" ({time.time() - t.seen_at:.0f} s ago)" if t.seen_at else ""
    lines.append(f"  team window{age}: {t.window_requests}{_of(t.rpm)} requests ({t.window_requests * per_min:.0f}/min)"
                 f" · {t.window_tokens}{_of(t.tpm)} tokens · waited {t.waited_s:.1f} s")
    lines.append(f"  shared cache: hits {t.cache_hits} · misses {t.cache_misses}")
    if t.budget_usd_per_day is not None:
        lines.append(f"  team budget: ${t.budget_used_usd:.4f} used · ${t.budget_left_usd or 0.0:.4f} left"
                     f" of ${t.budget_usd_per_day:.2f} today (UTC)")
    rtt = (f"p50 {t.redis_rtt_p50_ms:.2f} ms · p95 {t.redis_rtt_p95_ms:.2f} ms"
           if t.redis_rtt_p50_ms is not None and t.redis_rtt_p95_ms is not None else "no operations yet")
    lines.append(f"  redis round trip: {rtt} · ops {t.redis_ops} · errors {t.redis_errors}"
                 f" · local fallbacks {t.fallbacks} · refused {t.refused}")
    return lines


def team_metrics(llm: LLMStats, metric: Callable[[str, str, str, list[tuple[str, float]]], None]) -> None:
    metric("llm_cache_hits_by_level_total", "counter", "Response cache hits per level.",
           [(f'{{level="{_esc(k)}"}}', v) for k, v in llm.cache_hits_by_level.items()])
    if llm.budget_used_usd is not None:
        metric("llm_budget_used_usd", "gauge", "Spent today (UTC).", [("", llm.budget_used_usd)])
    t = llm.team
    if t is None:
        return
    metric("team_redis_up", "gauge", "1 while the team's Redis answers.", [("", int(t.state == "up"))])
    metric("team_daemons", "gauge", "Daemons sharing the limit recently.", [("", t.peers)])
    metric("team_window_requests", "gauge", "Requests in the team's rate window.", [("", t.window_requests)])
    metric("team_window_tokens", "gauge", "Tokens in the team's rate window.", [("", t.window_tokens)])
    metric("team_shared_cache_hits_total", "counter", "Answers found in the shared cache.", [("", t.cache_hits)])
    if t.budget_left_usd is not None:
        metric("team_budget_left_usd", "gauge", "Team budget left today (UTC).", [("", t.budget_left_usd)])
    metric("team_redis_errors_total", "counter", "Failed Redis operations.", [("", t.redis_errors)])
    metric("team_fallbacks_total", "counter", "Attempts admitted by local limits while Redis was down.",
           [("", t.fallbacks)])
    metric("team_refused_total", "counter", "Attempts refused while Redis was down.", [("", t.refused)])
    if t.redis_rtt_p50_ms is not None and t.redis_rtt_p95_ms is not None:
        metric("team_redis_rtt_seconds", "summary", "Round trip of one Redis operation.",
               [('{quantile="0.5"}', t.redis_rtt_p50_ms / 1000.0), ('{quantile="0.95"}', t.redis_rtt_p95_ms / 1000.0)])


def _of(limit: int | None) -> str:
    return f"/{limit}" if limit is not None else ""


def _terminal(text: str) -> str:
    """Text from config or Redis, safe to print on a terminal (no control characters)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def render_history(*, as_json: bool = False, path: str | None = None, days: int = 30) -> str:
    """`perfd stats --history`: model calls by plan, by day (last `days`) and by outcome.

    Reads the call history in the user's state folder (perfd.llm.HISTORY_FILE);
    nothing is written, and a missing file is an empty history, not created.
    """
    from perfd.llm import HISTORY_FILE, Summary, open_history
    from perfd.paths import state_dir

    path = path or os.path.join(state_dir(), HISTORY_FILE)
    groups: dict[str, list[Summary]] = {"by_plan": [], "by_day": [], "by_outcome": []}
    if os.path.exists(path):
        history = open_history(path)
        try:
            groups = {"by_plan": list(history.by_plan()), "by_day": list(history.by_day(days=days)),
                      "by_outcome": list(history.by_outcome())}
        finally:
            history.close()
    if as_json:
        return msgspec.json.encode({"path": path, **groups}).decode() + "\n"
    total = sum(g.calls for g in groups["by_outcome"])
    lines = [f"model calls: {total} in {path}"]
    if not total:
        return lines[0] + " (none recorded yet)\n"
    heads = {"by_plan": "plan", "by_day": f"day (last {days})", "by_outcome": "outcome"}
    for key, head in heads.items():
        lines.append("")
        lines.append(f"{head:24} {'calls':>6} {'hits':>6} {'errors':>6} {'tokens':>9} {'cost':>9} {'avg ms':>8}")
        for g in groups[key]:
            name = g.group or "(none)"
            tokens = g.prompt_tokens + g.completion_tokens
            lines.append(f"{name[:24]:24} {g.calls:>6} {g.cache_hits:>6} {g.errors:>6} {tokens:>9} "
                         f"{g.cost:>9.4f} {g.avg_latency_ms:>8.1f}")
    return "\n".join(lines) + "\n"
