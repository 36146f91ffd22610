"""How perfd shows its numbers: the daemon's stats as text, JSON and Prometheus (the history: history_view)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import msgspec

from perfd.llm.stats import LLMStats
from perfd.safetext import prometheus_label, shown
from perfd.wire.protocol import StatsSnapshot, WatcherReport
from perfd.wire.rendezvous import root_hash


# --- renderings -------------------------------------------------------------------


def validation_line(w: WatcherReport | None, *, trusting: bool = True) -> str:
    """How answers are validated, in one line: never "by the watcher" while anything is left unwatched."""
    if w is None or not trusting or not w.synced:
        why = ("no watcher" if w is None or w.backend == "none"
               else f"on {', '.join(shown(f) for f in w.no_events)}, a file system without change events"
               if w.no_events else f"{w.backend} cannot sync before an answer")
        return f"validation: by stat of every input ({why})"
    line = (f"validation: by the watcher (inotify, {w.watched} folders), its pending events taken before each"
            " answer")
    if w.unwatched:
        first = w.unwatched[0]
        more = f" and {len(w.unwatched) - 1} more" if len(w.unwatched) > 1 else ""
        line += (f"; by stat under {len(w.unwatched)} folder{'s' if len(w.unwatched) > 1 else ''} it could not"
                 f" watch: {shown(first.path)}{more} ({shown(first.reason)})")
        if w.watches_needed:
            at_least = (f" from {w.max_user_watches} to at least {w.max_user_watches + w.watches_needed}"
                        if w.max_user_watches else f" by at least {w.watches_needed}")
            line += f"; raise fs.inotify.max_user_watches{at_least} (folders under these need watches too)"
    return line


def render_json(s: StatsSnapshot) -> str:
    return msgspec.json.encode(s).decode() + "\n"


def _pct(rate: float) -> str:
    return f"{rate:.1%}"


def render_text(s: StatsSnapshot) -> str:
    c = s.cache
    levels = " · ".join(f"{lv.name} {lv.hits}/{lv.hits + lv.misses} ({_pct(lv.hit_rate)})" for lv in s.levels)
    lines = [
        f"perfd {s.version} daemon pid {s.pid} for {shown(s.root)}",
        f"uptime {s.uptime_s:.1f} s · rss {s.rss_bytes / 1048576:.1f} MiB · connections {s.connections}"
        f" · subscribers {s.subscribers} · editor sessions {s.sessions}",
        f"cache hit rate {_pct(s.hit_rate)} (hits over lookups, every level) · {levels}",
        f"  files: {c.entries}/{c.capacity} entries · hits {c.hits} · misses {c.misses}"
        f" · evictions {c.evictions} · expirations {c.expirations} · invalidations {c.invalidations}",
        f"  answers: memo hits {s.memo_hits} · computed {s.memo_misses}",
        f"watcher: {s.watcher_events} events in {s.watcher_batches} batches",
        validation_line(s.watcher, trusting=c.trusting),
        f"  trusted hits {c.trusted_hits} · stat-checked hits {c.stat_checks}"
        f" · answers stat-checked {c.answers_stat_checked} · watcher (re)starts {c.trust_restarts}"
        f" · from the parse store {c.persisted_hits}",
    ]
    if s.watcher is not None and s.watcher.verify_interval_s > 0:
        w = s.watcher
        lines.append(f"  verification pass every {w.verify_interval_s:g} s: {w.verify_passes} passes,"
                     f" {w.verify_found} changes no event reported, CPU {w.verify_cpu_share:.2%} of a core")
    if s.metrics_addr or s.metrics_error:
        lines.append(f"metrics: http://{shown(s.metrics_addr or '')}/metrics" if not s.metrics_error
                     else f"metrics: not served: {shown(s.metrics_error)}")
    if s.llm is not None:
        llm = s.llm
        llm_lat = (f"p50 {llm.latency_p50_ms:.0f} ms · p95 {llm.latency_p95_ms or 0:.0f} ms"
                   if llm.latency_p50_ms is not None else "no calls answered")
        lines += [
            f"model: {shown(llm.model)} at {shown(llm.base_url)} · breaker {llm.breaker_state} (opened {llm.breaker_opened} time{'' if llm.breaker_opened == 1 else 's'})",
            f"  calls {llm.calls} · requests {llm.requests} · retries {llm.retries} · 429s {llm.rate_limited}"
            f" · errors {sum(llm.errors.values())} · in flight {llm.in_flight} · connections opened {llm.connections_opened}",
            f"  latency {llm_lat} · tokens paid {llm.prompt_tokens + llm.completion_tokens}"
            f" (prompt {llm.prompt_tokens}, completion {llm.completion_tokens}) · "
            + (f"cost {llm.cost:.4f}" if llm.priced else "cost unknown (no price known for the model)"),
            f"  rate window: {llm.window_requests} requests, {llm.window_tokens} tokens · waited {llm.rate_limit_wait_s:.1f} s",
            f"  response cache: hits {llm.cache_hits} · misses {llm.cache_misses} · tokens saved {llm.tokens_saved}"
            + (f" · cost saved {llm.cost_saved:.4f}" if llm.priced else ""),
        ]
        if llm.served_by_fallback:
            lines.append("  answered by [llm] fallback: " + " · ".join(
                f"{shown(m)} {n}" for m, n in sorted(llm.served_by_fallback.items())))
        lines += team_lines(llm)  # --- team (shared limits through Redis) ---
    if s.methods:
        rows = [["COMMAND", "REQUESTS", "ERRORS", "P50 ms", "P95 ms", "P99 ms", "MAX ms"]]
        for m in s.methods:
            lat = m.latency
            rows.append([m.method, str(m.requests), str(m.errors), f"{lat.p50_ms:.3f}", f"{lat.p95_ms:.3f}",
                         f"{lat.p99_ms:.3f}", f"{lat.max_ms:.3f}"])
        from perfd.app.columns import printable, table

        lines.append("")
        lines.extend(table([[printable(c) for c in r] for r in rows]))  # a method name never breaks a row
        lines.append("(an error is a request that did not succeed: a JSON-RPC error or a command that exited non-zero)")
    return "\n".join(lines) + "\n"


def _num(v: float) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    return repr(float(v))  # full precision; Prometheus parses Python's float repr ("1e-05", "0.25")


def render_prometheus(s: StatsSnapshot) -> str:
    """Prometheus text exposition format 0.0.4: everything `perfd stats` shows (promtool-clean names)."""
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP perfd_{name} {help_}")
        out.append(f"# TYPE perfd_{name} {kind}")
        for suffix_labels, value in samples:
            out.append(f"perfd_{name}{suffix_labels} {_num(value)}")

    def lab(**kv: str) -> str:
        return "{" + ",".join(f'{k}="{prometheus_label(v)}"' for k, v in kv.items()) + "}"

    c = s.cache
    # The workspace by its folder's name and the hash that names its daemon's socket: never its path.
    metric("info", "gauge", "Always 1; the daemon's version and workspace (folder name and id) as labels.",
           [(lab(version=s.version, workspace=os.path.basename(s.root.rstrip("/")) or "/",
                 workspace_id=root_hash(s.root)), 1)])
    metric("uptime_seconds", "gauge", "Seconds since the daemon started.", [("", s.uptime_s)])
    metric("resident_memory_bytes", "gauge", "Resident set size.", [("", s.rss_bytes)])
    metric("connections", "gauge", "Open connections.", [("", s.connections)])
    metric("subscribers", "gauge", "Connections subscribed to plan changes.", [("", s.subscribers)])
    metric("editor_sessions", "gauge", "Editor (LSP) sessions served.", [("", s.sessions)])
    levels = [(lab(level=lv.name.replace(" ", "_")), lv) for lv in s.levels]
    metric("cache_hits_total", "counter", "Cache hits per level (answers, files, model_responses).",
           [(lb, lv.hits) for lb, lv in levels])
    metric("cache_misses_total", "counter", "Cache misses per level.", [(lb, lv.misses) for lb, lv in levels])
    metric("cache_hit_ratio", "gauge", "Hits over lookups per level; level=\"all\" counts every level.",
           [(lab(level="all"), s.hit_rate)] + [(lb, lv.hit_rate) for lb, lv in levels])
    metric("file_cache_entries", "gauge", "Entries in the file (stat) cache.", [("", c.entries)])
    metric("file_cache_capacity", "gauge", "Capacity of the file (stat) cache.", [("", c.capacity)])
    metric("file_cache_evictions_total", "counter", "LRU evictions.", [("", c.evictions)])
    metric("file_cache_expirations_total", "counter", "TTL expirations.", [("", c.expirations)])
    metric("file_cache_invalidations_total", "counter", "Entries dropped because a file changed.",
           [("", c.invalidations)])
    metric("file_cache_trusted_hits_total", "counter", "File cache hits served on the watcher's word, without a stat.",
           [("", c.trusted_hits)])
    metric("file_cache_stat_checks_total", "counter", "File cache hits validated by stat (no watcher vouching).",
           [("", c.stat_checks)])
    metric("watcher_events_total", "counter", "File change events seen by the watcher.", [("", s.watcher_events)])
    metric("watcher_batches_total", "counter", "Batches of file change events.", [("", s.watcher_batches)])
    metric("metrics_endpoint_up", "gauge", "1 when the /metrics endpoint serves, 0 when it could not start.",
           [("", int(s.metrics_addr is not None and s.metrics_error is None))])
    metric("requests_total", "counter", "Requests per command (generate, status, run, ...) or method.",
           [(lab(command=m.method), m.requests) for m in s.methods])
    metric("request_errors_total", "counter",
           "Requests that did not succeed (a JSON-RPC error or a non-zero exit), per command.",
           [(lab(command=m.method), m.errors) for m in s.methods])
    lat: list[tuple[str, float]] = []
    for m in s.methods:
        for q, v in (("0.5", m.latency.p50_ms), ("0.95", m.latency.p95_ms), ("0.99", m.latency.p99_ms)):
            lat.append((lab(command=m.method, quantile=q), v / 1000.0))
        lat.append(("_sum" + lab(command=m.method), m.total_s))
        lat.append(("_count" + lab(command=m.method), m.requests))
    metric("request_duration_seconds", "summary", "Request latency per command (quantiles of a recent window).", lat)
    if s.llm is not None:
        llm = s.llm
        states = ("closed", "half_open", "open")
        metric("llm_info", "gauge", "Always 1; the model and server as labels.",
               [(lab(model=llm.model, base_url=llm.base_url), 1)])
        metric("llm_calls_total", "counter", "Model calls (cache hits included).", [("", llm.calls)])
        metric("llm_requests_total", "counter", "HTTP requests sent to the model.", [("", llm.requests)])
        metric("llm_retries_total", "counter", "Retried attempts.", [("", llm.retries)])
        metric("llm_rate_limited_total", "counter", "429 responses.", [("", llm.rate_limited)])
        metric("llm_rate_limit_wait_seconds_total", "counter", "Time callers waited for rpm/tpm capacity.",
               [("", llm.rate_limit_wait_s)])
        metric("llm_errors_total", "counter", "Failed calls by kind.",
               [(lab(kind=k), v) for k, v in sorted(llm.errors.items())])
        metric("llm_breaker_state", "gauge", "1 for the circuit breaker's current state.",
               [(lab(state=st), int(llm.breaker_state == st)) for st in states])
        metric("llm_breaker_opened_total", "counter", "Times the circuit breaker opened.", [("", llm.breaker_opened)])
        metric("llm_in_flight", "gauge", "HTTP requests to the model currently out.", [("", llm.in_flight)])
        metric("llm_tokens_total", "counter", "Tokens paid for, by kind.",
               [(lab(kind="prompt"), llm.prompt_tokens), (lab(kind="completion"), llm.completion_tokens)])
        metric("llm_cost_total", "counter", "Cost paid, at the configured prices.", [("", llm.cost)])
        metric("llm_tokens_saved_total", "counter", "Tokens served from the response cache.", [("", llm.tokens_saved)])
        metric("llm_cost_saved_total", "counter", "Cost the response cache saved, at the configured prices.",
               [("", llm.cost_saved)])
        metric("llm_connections_opened_total", "counter", "TCP connections opened to the model.",
               [("", llm.connections_opened)])
        # Gauges, one per percentile: a "quantile" label belongs to summaries, which need a _sum the
        # client's recent-window percentiles do not have.
        for name, ms in (("p50", llm.latency_p50_ms), ("p95", llm.latency_p95_ms), ("p99", llm.latency_p99_ms)):
            if ms is not None:
                metric(f"llm_latency_{name}_seconds", "gauge",
                       f"{name} latency of answered model calls (recent window).", [("", ms / 1000.0)])
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
            lines.append(f"  budget: ${llm.budget_used_usd:.4f} used today (UTC, all your runs)")
        return lines
    state = t.state.upper() if t.state == "down" else t.state
    lines.append(f"team: redis {shown(t.redis)} namespace {shown(t.namespace)} · {state}"
                 f" · fail {t.fail} · daemons {t.peers}")
    if t.state == "down":
        since = f" since {time.strftime('%H:%M:%S', time.localtime(t.down_since))}" if t.down_since else ""
        doing = ("running on local limits and cache" if t.fail == "open"
                 else "refusing model calls ([team] fail = \"closed\")")
        lines.append(f"  WARNING: REDIS DOWN{since}: {doing}; {shown(t.last_error or '')}")
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
           [(f'{{level="{prometheus_label(k)}"}}', v) for k, v in llm.cache_hits_by_level.items()])
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
    for name, ms in (("p50", t.redis_rtt_p50_ms), ("p95", t.redis_rtt_p95_ms)):
        if ms is not None:  # gauges, as for the model's latency: no _sum to make a summary of
            metric(f"team_redis_rtt_{name}_seconds", "gauge", f"{name} round trip of one Redis operation.",
                   [("", ms / 1000.0)])


def _of(limit: int | None) -> str:
    return f"/{limit}" if limit is not None else ""
