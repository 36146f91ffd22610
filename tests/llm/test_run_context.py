"""`perfd run` sends a prompt that stands on its own (the files it names, inlined, within a budget),
pays for nothing when there is nothing to do, refuses a blocked achievement without its flag, and
`--dry-run` sends nothing. Against the stand-in model server, in-process."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from fakeserver import FakeServer

from perfd.app.commands import run as run_command
from perfd.app.context import CUT_MARK, Source, inline
from perfd.app.run_render import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "daemon" / "perfd" / "example"
PLANS = Path("work-space") / "plans"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(EXAMPLE, root)
    return root


def run(ws: Path, server: FakeServer, *argv: str, **env: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", *argv], str(ws), out=out, err=err, env={
        "PERFD_LLM_BASE_URL": server.base_url, "PERFD_LLM_MODEL": "fake-model",
        "PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"], "PERFD_TRUSTED_PATHS": os.environ["PERFD_TRUSTED_PATHS"],
        **env})
    return code, out.getvalue(), err.getvalue()


def sent(server: FakeServer) -> str:
    content = server.records[-1].body["messages"][0]["content"]
    assert isinstance(content, str)
    return content


def text(ws: Path, *parts: str) -> str:
    return (ws / PLANS).joinpath(*parts).read_text(encoding="utf-8")


def test_active_execution_sends_the_text_of_its_subplan_and_execution_task(ws: Path, server: FakeServer) -> None:
    code, _out, err = run(ws, server, "@SEARCH-INDEX", "0.2")
    assert code == 0, err
    prompt = sent(server)
    assert prompt.startswith("Continue the EXECUTION_TASK")  # the template's own text first
    execution = text(ws, "SEARCH-INDEX", "execution", "EXECUTION_TASK_SEARCH-INDEX_02_01.md")
    subplan = text(ws, "SEARCH-INDEX", "subplans", "SUBPLAN_SEARCH-INDEX_02.md")
    assert execution.strip() in prompt and subplan.strip() in prompt
    # file names as headings, in the order the template names them: the EXECUTION_TASK, then the SUBPLAN
    exec_at = prompt.index("### work-space/plans/SEARCH-INDEX/execution/EXECUTION_TASK_SEARCH-INDEX_02_01.md")
    sub_at = prompt.index("### work-space/plans/SEARCH-INDEX/subplans/SUBPLAN_SEARCH-INDEX_02.md")
    section_at = prompt.index("### work-space/plans/SEARCH-INDEX/PLAN_SEARCH-INDEX.md, lines ")
    assert exec_at < sub_at < section_at
    assert "Left out" not in prompt


def test_fix_pending_sends_the_fix_file(ws: Path, server: FakeServer) -> None:
    code, _out, err = run(ws, server, "@API-CLIENT", "1.2")
    assert code == 0, err
    prompt = sent(server)
    assert text(ws, "API-CLIENT", "execution", "feedbacks", "FIX_12.md").strip() in prompt
    assert text(ws, "API-CLIENT", "subplans", "SUBPLAN_API-CLIENT_12.md").strip() in prompt


def test_a_complete_achievement_sends_nothing_and_says_so(ws: Path, server: FakeServer) -> None:
    code, out, err = run(ws, server, "@API-CLIENT", "1.1")
    assert code == 0 and server.records == [] and out == ""
    assert "achievement 1.1 is complete; nothing to do, nothing sent" in err
    code, out, _err = run(ws, server, "@API-CLIENT", "1.1", "--json")
    got = json.loads(out)
    assert code == 0 and server.records == []
    assert got["nothing_to_do"] is True and got["state"] == "complete" and got["achievement"] == "1.1"


def test_nothing_to_do_needs_no_model(ws: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", "@API-CLIENT", "1.1"], str(ws), out=out, err=err,
                env={"PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"]})
    assert code == 0 and "nothing to do" in err.getvalue() and "no model" not in err.getvalue()


def test_a_complete_plan_sends_nothing(ws: Path, server: FakeServer) -> None:
    code, out, err = run(ws, server, "@RELEASE-0.1", "--next", "--json")
    assert code == 0 and server.records == []
    assert json.loads(out)["state"] == "plan_complete" and "nothing to do" in err


def test_a_blocked_achievement_is_refused_without_its_flag(ws: Path, server: FakeServer) -> None:
    code, out, err = run(ws, server, "@DOCS-SITE", "3.1")
    assert code == 1 and server.records == [] and out == ""
    assert "achievement 3.1 of @DOCS-SITE waits on 2." in err and "--blocked-ok" in err
    code, _out, err = run(ws, server, "@DOCS-SITE", "3.1", "--force")  # --force means "overwrite", not this
    assert code == 2 and server.records == []
    code, _out, err = run(ws, server, "@DOCS-SITE", "3.1", "--blocked-ok")
    assert code == 0 and len(server.records) == 1, err


def test_a_file_larger_than_the_budget_is_cut_at_the_mark_and_named(ws: Path, server: FakeServer) -> None:
    subplan = ws / PLANS / "API-CLIENT" / "subplans" / "SUBPLAN_API-CLIENT_12.md"
    lines = [f"- step {i}: " + "words " * 12 + "\n" for i in range(2000)]
    subplan.write_text(subplan.read_text() + "".join(lines))
    code, _out, err = run(ws, server, "@API-CLIENT", "1.2", PERFD_LLM_CONTEXT_TOKENS="3000")
    assert code == 0, err
    prompt = sent(server)
    assert len(prompt.encode()) <= 3000 * 4
    assert CUT_MARK in prompt and "- step 0: " in prompt and "- step 1999: " not in prompt
    name = "work-space/plans/API-CLIENT/subplans/SUBPLAN_API-CLIENT_12.md"
    tail = prompt[prompt.index("## Left out for the token budget (3000 tokens)"):]
    assert f"- {name} (lines " in tail and "of 2017 left out)" in tail
    # the EXECUTION_TASK after it did not fit at all: named as left out whole
    assert "EXECUTION_TASK_API-CLIENT_12_01.md (whole file)" in tail
    assert "left out for the token budget" in err
    # The same content and budget: the same prompt, so the same cache key (no second request).
    before = len(server.records)
    code, _out, err = run(ws, server, "@API-CLIENT", "1.2", PERFD_LLM_CONTEXT_TOKENS="3000")
    assert code == 0 and len(server.records) == before and "from the response cache" in err


def test_a_changed_referenced_file_is_a_new_call(ws: Path, server: FakeServer) -> None:
    run(ws, server, "@API-CLIENT", "1.2")
    run(ws, server, "@API-CLIENT", "1.2")
    assert len(server.records) == 1  # the second from the cache
    execution = ws / PLANS / "API-CLIENT" / "execution" / "EXECUTION_TASK_API-CLIENT_12_01.md"
    execution.write_text(execution.read_text() + "- one more line of log\n")
    code, _out, err = run(ws, server, "@API-CLIENT", "1.2")
    assert code == 0 and len(server.records) == 2, err
    assert "- one more line of log" in sent(server)


def test_dry_run_sends_nothing_and_shows_the_exact_request(ws: Path, server: FakeServer) -> None:
    code, out, err = run(ws, server, "@API-CLIENT", "1.2", "--dry-run")
    assert code == 0 and server.records == []
    assert "dry run, nothing sent" in err and "prompt tokens (4 bytes a token) of a budget of 32000" in err
    code, jout, _err = run(ws, server, "@API-CLIENT", "1.2", "--dry-run", "--json", PERFD_LLM_PRICE_PROMPT_PER_1K="1.0")
    assert code == 0 and server.records == []
    d = json.loads(jout)
    assert d["dry_run"] is True and d["model"] == "fake-model" and d["url"].endswith("/chat/completions")
    assert d["messages"][0]["content"] == out and d["prompt_tokens_estimate"] == -(-len(out.encode()) // 4)
    assert d["cost_estimate"] == pytest.approx(d["prompt_tokens_estimate"] / 1000)
    # What the dry run showed is what a real run sends.
    code, _o, err = run(ws, server, "@API-CLIENT", "1.2")
    assert code == 0 and sent(server) == out, err
    # ... and what `generate --inline` prints; plain `generate` keeps the references.
    got = run_command(["generate", "@API-CLIENT", "1.2", "--inline"], str(ws))
    assert got.code == 0 and got.stdout == out
    plain = run_command(["generate", "@API-CLIENT", "1.2"], str(ws))
    assert plain.code == 0 and "## The files named above" not in plain.stdout and out.startswith(plain.stdout.rstrip("\n"))


def test_dry_run_goes_without_a_key(ws: Path, server: FakeServer) -> None:
    code, out, err = run(ws, server, "@API-CLIENT", "1.2", "--dry-run", PERFD_LLM_API_KEY_ENV="PERFD_TEST_UNSET_KEY")
    assert code == 0 and server.records == [] and "## The files named above" in out, err


def test_the_cut_is_deterministic_and_a_fence_cannot_be_closed_by_the_content() -> None:
    nasty = "```\n# not a heading of ours\n````\n" * 50
    a = inline("Do it.\n", [Source("a.md", nasty), Source("b.md", "b\n" * 5000)], 1000)
    b = inline("Do it.\n", [Source("a.md", nasty), Source("b.md", "b\n" * 5000)], 1000)
    assert a == b and a.tokens <= 1000 and a.files == ["a.md"] and len(a.cut) == 1 and a.cut[0].startswith("b.md")
    assert "\n`````\n```\n# not a heading" in a.prompt  # a fence longer than any run of backticks inside
    named = inline("Do it.\n", [Source("a\n### b.md", "text\n")], 1000)
    assert "### a\\n### b.md\n" in named.prompt and "\n### b.md" not in named.prompt
    small = inline("Do it.\n", [Source("a.md", "x" * 100_000)], 150)
    assert small.left_out == ["a.md"] and small.files == [] and "a.md (whole file)" in small.prompt


def test_the_estimate_is_calibrated_from_the_servers_counts_in_steps(ws: Path, server: FakeServer) -> None:
    from perfd.app.calibration import MIN_TOKENS, Sample, calibration, figure

    assert figure(None) == 4.0 and figure(Sample(10_000, MIN_TOKENS - 1)) == 4.0
    assert figure(Sample(2 * MIN_TOKENS, MIN_TOKENS)) == 2.0 and figure(Sample(int(2.2 * MIN_TOKENS), MIN_TOKENS)) == 2.0
    assert figure(Sample(100 * MIN_TOKENS, MIN_TOKENS)) == 8.0  # within bounds whatever a server says
    # A server that counts a token for every two bytes: the budget holds half the text it did.
    cal = calibration()
    assert cal is not None
    cal.observe("fake-model", 2 * MIN_TOKENS, MIN_TOKENS)
    assert cal.bytes_per_token("fake-model") == 2.0 and cal.bytes_per_token("another-model") == 4.0
    subplan = ws / PLANS / "API-CLIENT" / "subplans" / "SUBPLAN_API-CLIENT_12.md"
    subplan.write_text(subplan.read_text() + "- a line of the plan's own words\n" * 2000)
    code, out, err = run(ws, server, "@API-CLIENT", "1.2", "--dry-run", "--json", PERFD_LLM_CONTEXT_TOKENS="3000")
    d = json.loads(out)
    assert code == 0 and d["bytes_per_token"] == 2.0 and server.records == []
    assert len(d["messages"][0]["content"].encode()) <= 3000 * 2 < 3000 * 4 and d["cut"]
    # What a real call's server counts is added (the stand-in counts a token per four characters).
    code, _out, err = run(ws, server, "@API-CLIENT", "1.2")
    assert code == 0, err
    got = json.loads(Path(cal.path).read_text())["fake-model"]
    assert got["tokens"] > MIN_TOKENS and got["bytes"] > 2 * MIN_TOKENS
