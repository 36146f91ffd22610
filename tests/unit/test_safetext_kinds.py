"""One escaping rule per kind of output, fed arbitrary text and checked by an independent reader.

- CSV: Python's csv module reads the cell back; after NFKC (what a spreadsheet folds full-width ＝ to)
  and leading whitespace, no cell starts a formula.
- Markdown: markdown-it-py (CommonMark, with tables) parses the export; no HTML, comment, link, image,
  code or emphasis comes out, and each cell's text is exactly the name as a terminal shows it.
- Prometheus: promtool accepts the text, and a reader of the format's escapes gets the name back as shown.
- Terminal: a byte scan finds no control (an answer keeps its newlines and tabs, nothing else).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import unicodedata

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfd.app.history_view import HistoryReport, render_csv, render_markdown
from perfd.llm.history import Summary
from perfd.safetext import answer_text, csv_cell, markdown_text, prometheus_label, shown

# Text an attacker would try first, mixed into hypothesis's own.
NASTY = ["<img src=x onerror=alert(1)>", "<!-- hidden -->", "[click](javascript:alert(1))", "![i](http://e/x.png)",
         "<https://evil.example>", "<script>x</script>", "`code`", "*em* _em_ **strong**", "# heading", "| a | b |",
         "=1+1", " =cmd|' /C calc'!A0", "\t=1", "＝1", "\u3000＋1", "－1", "＠SUM(A1)", "\r=1", "a\nb", "\x1b]52;c;aGk=\x07",
         "\x1b[2J", "\u202eevil", "\udc80bytes", "&lt;b&gt;", "&#60;b&#62;", "\\<b>", "]]>", "a\x85b", "\x9b31m"]
texts = st.one_of(st.sampled_from(NASTY), st.text(), st.lists(st.sampled_from(NASTY + ["x", " ", "\\"]),
                                                             max_size=4).map("".join))

CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
ANSWER_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _summary(name: str | None) -> Summary:
    return Summary(group=name, calls=1, cache_hits=0, errors=0, prompt_tokens=1, completion_tokens=1, cost=0.0,
                   avg_latency_ms=1.0, first_ts=0.0, last_ts=0.0)


def _report(name: str) -> HistoryReport:
    one = [_summary(name)]
    return HistoryReport(path="/h", workspace=name, plan=name, model=name, since=None, days=30, by_plan=one,
                         by_day=[_summary("2026-12-01")], by_outcome=[_summary("ok")], by_model=one)


# --- terminal -----------------------------------------------------------------------------


@given(texts)
def test_shown_leaves_no_control_at_all(text: str) -> None:
    out = shown(text)
    assert CONTROLS.search(out) is None
    out.encode("utf-8")  # printable whatever the input: no lone surrogate left


@given(st.one_of(texts, st.text(min_size=257, max_size=2000),
                 st.text(alphabet=st.characters(max_codepoint=0x7f), min_size=257, max_size=2000)))
def test_an_answer_keeps_lines_and_tabs_and_nothing_else(text: str) -> None:
    out = answer_text(text)
    assert ANSWER_CONTROLS.search(out) is None
    assert out.count("\n") == text.count("\n") and out.count("\t") == text.count("\t")
    if ANSWER_CONTROLS.search(text) is None:
        assert out == text  # ordinary text goes out as it is


# --- CSV ------------------------------------------------------------------------------------


def _formula(cell: str) -> bool:
    return unicodedata.normalize("NFKC", cell).lstrip().startswith(("=", "+", "-", "@"))


@given(texts)
def test_csv_cells_never_start_a_formula_and_read_back_as_shown(text: str) -> None:
    rows = list(csv.reader(io.StringIO(render_csv(_report(text)), newline="")))
    header, body = rows[0], rows[1:]
    assert header[1] == "group" and len(body) == 4
    for row in body:
        assert len(row) == len(header)  # no name forges a column or a row
        assert not _formula(row[1]), row[1]
        assert CONTROLS.search(row[1]) is None
    cell = next(r[1] for r in body if r[0] == "plan")
    assert cell in (shown(text), "'" + shown(text))


@pytest.mark.parametrize("text", [" =1", "\u3000=1", "＝1", "＋1", "－1", "＠x", "\t=1", "  @x", "\ufe66x"])
def test_the_known_csv_holes_are_closed(text: str) -> None:
    assert not _formula(csv_cell(text))


# --- Markdown -------------------------------------------------------------------------------


def _markdown_parser():  # type: ignore[no-untyped-def]
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table")


FORBIDDEN = {"html_inline", "html_block", "link_open", "image", "code_inline", "em_open", "strong_open",
             "heading_open", "bullet_list_open", "ordered_list_open", "code_block", "fence", "blockquote_open"}


def _walk(tokens: list) -> list:  # type: ignore[type-arg]
    out = []
    for t in tokens:
        out.append(t)
        out += _walk(t.children or [])
    return out


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_markdown_carries_no_markup_and_each_cell_reads_back_as_shown(text: str) -> None:
    md = _markdown_parser()
    tokens = _walk(md.parse(render_markdown(_report(text))))
    kinds = {t.type for t in tokens}
    assert not kinds & (FORBIDDEN - {"strong_open"}), (text, kinds & FORBIDDEN)
    assert [t.type for t in tokens].count("strong_open") == 1  # the export's own bold title, nothing else
    assert {"table_open", "th_open", "td_open"} <= kinds  # the tables are still tables
    cells: list[str] = []
    in_td = False
    for t in tokens:
        if t.type == "td_open":
            in_td = True
        elif t.type == "td_close":
            in_td = False
        elif in_td and t.type == "inline":
            cells.append("".join(c.content for c in t.children or [] if c.type in ("text", "softbreak")))
    assert shown(text).strip() in cells  # the name as a terminal shows it, literally (a cell is trimmed)


@given(texts)
def test_markdown_text_alone_is_literal_inline_text(text: str) -> None:
    md = _markdown_parser()
    tokens = _walk(md.parse("x " + markdown_text(text)))
    assert not {t.type for t in tokens} & FORBIDDEN
    inline = [t for t in tokens if t.type == "inline"]
    rendered = "".join(c.content for t in inline for c in t.children or [] if c.type == "text")
    assert rendered == ("x " + shown(text)).rstrip(" ")  # a paragraph drops trailing spaces, nothing else


# --- Prometheus -----------------------------------------------------------------------------


_LABEL_ESCAPES = re.compile(r'\\(.)')


def _read_label(value: str) -> str:
    """The format's reader: \\\\, \\" and \\n are its only escapes."""
    def one(m: re.Match[str]) -> str:
        ch = m.group(1)
        assert ch in '\\"n', f"invalid escape \\{ch}"
        return "\n" if ch == "n" else ch
    return _LABEL_ESCAPES.sub(one, value)


@given(texts)
def test_a_label_value_reads_back_per_the_format(text: str) -> None:
    value = prometheus_label(text)
    assert CONTROLS.search(value) is None and '"' not in value.replace('\\"', "")
    back = _read_label(value)
    assert back.replace("\n", "\\n") == shown(text)  # a line feed comes back as one; the rest as shown


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(texts, min_size=1, max_size=5))
def test_promtool_accepts_the_stats_whatever_the_names(names: list[str]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (tests/setup-tools.sh installs it)")
    from pathlib import Path

    from perfd.app.stats_view import render_prometheus
    from perfd.engine.engine import Engine
    from perfd.llm.stats import LLMStats
    from perfd.runtime.stats import Stats, snapshot

    example = Path(__file__).resolve().parents[2] / "daemon" / "perfd" / "example"
    stats = Stats()
    for n in names:
        stats.record(n, 1000)
    llm = LLMStats(base_url=names[0], model=names[-1], calls=1, requests=1, retries=0, errors={names[0]: 1},
                   attempt_errors={}, rate_limited=0, rate_limit_wait_s=0.0, window_requests=0, window_tokens=0,
                   breaker_state="closed", breaker_opened=0, cache_hits=0, cache_misses=0, cache_rebuilt=0,
                   tokens_saved=0, cost_saved=0.0, prompt_tokens=0, completion_tokens=0, cost=0.0,
                   connections_opened=0, in_flight=0, latency_p50_ms=None, latency_p95_ms=None, latency_p99_ms=None,
                   cache_hits_by_level={names[-1]: 1})
    text = render_prometheus(snapshot(root=str(example), engine=Engine(str(example)), stats=stats, llm=llm))
    assert CONTROLS.search(text.replace("\n", "")) is None
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode("utf-8"), capture_output=True, timeout=30)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), (p.stdout + p.stderr).decode()[:2000]
    msgspec.json.encode(names[0].encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
