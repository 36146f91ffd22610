"""How the numbers print: text, and Prometheus text that promtool accepts whatever the names inside."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from perfd.app.stats_view import render_prometheus, render_text
from perfd.runtime.stats import Stats, snapshot
from perfd.engine.engine import Engine
from perfd.llm.stats import LLMStats
from perfd.wire.protocol import StatsSnapshot

EXAMPLE = Path(__file__).resolve().parents[2] / "daemon" / "perfd" / "example"


def _full() -> StatsSnapshot:
    engine = Engine(str(EXAMPLE))
    engine.status()
    engine.status()
    stats = Stats()
    stats.record("generate", 2_000_000, error=True)
    stats.record("generate", 1_000_000)
    stats.record('odd "name"\\\n', 5)
    llm = LLMStats(base_url="http://127.0.0.1:1/v1", model='m "1"', calls=3, requests=2, retries=1,
                   errors={"timeout": 1}, attempt_errors={}, rate_limited=1, rate_limit_wait_s=0.5, window_requests=1,
                   window_tokens=10, breaker_state="half_open", breaker_opened=1, cache_hits=1, cache_misses=2,
                   cache_rebuilt=0, tokens_saved=30, cost_saved=0.001, prompt_tokens=100, completion_tokens=50,
                   cost=0.002, connections_opened=1, in_flight=0, latency_p50_ms=120.0, latency_p95_ms=300.0,
                   latency_p99_ms=None)
    return snapshot(root=str(EXAMPLE), engine=engine, stats=stats, llm=llm, metrics_addr="127.0.0.1:9464")


def test_prometheus_carries_everything_stats_shows() -> None:
    s = _full()
    prom = render_prometheus(s)
    for name in ("perfd_cache_hits_total{level=\"answers\"}", "perfd_cache_hits_total{level=\"model_responses\"} 1",
                 "perfd_cache_hit_ratio{level=\"all\"}", "perfd_file_cache_invalidations_total",
                 "perfd_request_errors_total{command=\"generate\"} 1", "perfd_request_duration_seconds_count{command=\"generate\"} 2",
                 "perfd_request_duration_seconds_sum{command=\"generate\"} 0.003", "perfd_llm_tokens_total{kind=\"prompt\"} 100",
                 "perfd_llm_cost_total 0.002", "perfd_llm_cost_saved_total 0.001", "perfd_llm_tokens_saved_total 30",
                 "perfd_llm_latency_p50_seconds 0.12", "perfd_llm_rate_limit_wait_seconds_total 0.5",
                 "perfd_llm_breaker_state{state=\"half_open\"} 1", "perfd_metrics_endpoint_up 1", "perfd_editor_sessions 0"):
        assert name in prom, name
    assert 'command="odd \\"name\\"\\\\\\n"' in prom  # label values escaped as the format says
    assert "method=" not in prom  # one `command` label, no `cli` method


def test_prometheus_text_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; tests/setup-tools.sh installs it)")
    p = subprocess.run([promtool, "check", "metrics"], input=render_prometheus(_full()), capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr


def test_text_labels_every_level_and_the_headline_rate() -> None:
    s = _full()
    text = render_text(s)
    assert f"cache hit rate {s.hit_rate:.1%} (hits over lookups, every level)" in text
    answers = next(lv for lv in s.levels if lv.name == "answers")
    assert answers.hits >= 1 and answers.misses >= 1  # the second status was answered from memory
    assert f"answers {answers.hits}/{answers.hits + answers.misses} ({answers.hit_rate:.1%})" in text
    assert "model responses 1/3 (33.3%)" in text
    assert 'odd "name"' + chr(92) + chr(92) + 'n' in text and 'odd "name"' + chr(92) + chr(10) not in text  # never breaks a row
    assert "tokens paid 150 (prompt 100, completion 50) · cost 0.0020" in text
    assert "cost saved 0.0010" in text and "(opened 1 time)" in text
    assert "metrics: http://127.0.0.1:9464/metrics" in text and "COMMAND" in text


def test_validation_is_never_said_to_be_the_watchers_while_a_folder_is_unwatched() -> None:
    from perfd.app.stats_view import validation_line
    from perfd.wire.protocol import UnwatchedFolder, WatcherReport

    healthy = WatcherReport(backend="inotify", synced=True, watched=12)
    assert validation_line(healthy).startswith("validation: by the watcher (inotify, 12 folders)")
    short = WatcherReport(backend="inotify", synced=True, watched=8, max_user_watches=8, watches_needed=4,
                          unwatched=[UnwatchedFolder("work-space/plans/B", "the inotify watch limit is reached"),
                                     UnwatchedFolder("work-space/plans/C", "the inotify watch limit is reached")])
    line = validation_line(short)
    assert "by stat under 2 folders" in line and "work-space/plans/B and 1 more" in line
    assert "raise fs.inotify.max_user_watches from 8 to at least 12" in line
    assert validation_line(None).startswith("validation: by stat of every input (no watcher)")
    nfs = WatcherReport(backend="inotify", synced=False, no_events=["work-space/plans"])
    assert "a file system without change events" in validation_line(nfs)
    assert "cannot sync" in validation_line(WatcherReport(backend="watchfiles", synced=False))


def test_prometheus_names_the_workspace_by_folder_and_hash_never_its_path() -> None:
    from perfd.wire.rendezvous import root_hash

    s = _full()
    prom = render_prometheus(s)
    assert str(EXAMPLE) not in prom and str(EXAMPLE.parent) not in prom
    assert f'workspace="example",workspace_id="{root_hash(str(EXAMPLE))}"' in prom


def test_a_model_name_with_cr_and_escapes_keeps_the_prometheus_text_valid() -> None:
    import msgspec

    s = _full()
    assert s.llm is not None
    llm = msgspec.structs.replace(s.llm, model="m\r# TYPE x counter\x1b]52;c;aGk=\x07\n\u202e")
    prom = render_prometheus(msgspec.structs.replace(s, llm=llm))
    assert "\r" not in prom and "\x1b" not in prom and "\x07" not in prom and "\u202e" not in prom
    assert 'model="m\\\\r# TYPE x counter\\\\e]52;c;aGk=\\\\x07\\n\\\\u202e"' in prom
    promtool = shutil.which("promtool")
    if promtool is not None:
        p = subprocess.run([promtool, "check", "metrics"], input=prom, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr
