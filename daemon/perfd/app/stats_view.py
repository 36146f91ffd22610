"""How perfd shows its numbers: the daemon's stats as text, JSON and Prometheus, and the model-call history."""

from __future__ import annotations

import os

import msgspec

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
        f"validation: {'by the watcher' if c.trusting else 'by stat (no watcher)'} · trusted hits {c.trusted_hits}"
        f" · stat-checked hits {c.stat_checks} · answers stat-checked {c.answers_stat_checked}"
        f" · watcher (re)starts {c.trust_restarts} · from the parse store {c.persisted_hits}",
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
    metric("cache_trusted_hits_total", "counter", "Hits served on the watcher's word, without a stat.",
           [("", c.trusted_hits)])
    metric("cache_stat_checks_total", "counter", "Hits validated by stat (no watcher vouching).", [("", c.stat_checks)])
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
    return "\n".join(out) + "\n"


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
