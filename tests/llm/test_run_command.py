"""`perfd run`: prompt -> model -> streamed answer, --write, --parallel, against the fake server."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from fakeserver import FakeServer

from perfd.app.run_render import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "daemon" / "perfd" / "example"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(EXAMPLE, root)
    return root


def env_for(server: FakeServer) -> dict[str, str]:
    return {"PERFD_LLM_BASE_URL": server.base_url, "PERFD_LLM_MODEL": "fake-model",
            "PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"], "PERFD_TRUSTED_PATHS": os.environ["PERFD_TRUSTED_PATHS"]}


def run(ws: Path, server: FakeServer | None, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = env_for(server) if server else {"PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"]}
    code = main(["run", *argv], str(ws), out=out, err=err, env=env)
    return code, out.getvalue(), err.getvalue()


def test_without_a_provider_it_says_how_to_configure(ws: Path) -> None:
    code, out, err = run(ws, None, "@API-CLIENT", "--next")
    assert code == 1
    assert "no model is configured" in err and "PERFD_LLM_BASE_URL" in err and "[llm]" in err
    # the hint prints as lines, indented under "hint: ", not as one line of literal "\n"
    lines = err.splitlines()
    assert "\\n" not in err and len(lines) > 10 and lines[2].startswith("      [tool.perfd.llm]")


def test_a_state_folder_that_is_a_file_is_one_line(ws: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from perfd.app.commands import run as run_command

    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("PERFD_STATE_DIR", str(tmp_path / "afile" / "perfd"))
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", "@API-CLIENT", "--next"], str(ws), out=out, err=err,
                env={"PERFD_LLM_BASE_URL": "http://127.0.0.1:9/v1", "PERFD_LLM_MODEL": "m"})
    assert code == 1 and err.getvalue().startswith("perfd: cannot open the model client: cannot make the folder ")
    assert "Traceback" not in err.getvalue() and out.getvalue() == ""
    got = run_command(["stats", "--history"], str(ws))
    assert got.code == 1 and got.stderr.startswith("perfd: cannot make the folder ") and got.stderr.count("\n") == 1


def test_streams_the_answer_to_the_prompt_of_the_next_step(ws: Path, server: FakeServer) -> None:
    code, out, err = run(ws, server, "@API-CLIENT", "--next")
    assert code == 0, err
    assert out.startswith("reply#") and "Address the review of achievement 1.2" in out
    assert "sending achievement 1.2 (fix_pending) to fake-model" in err
    assert err.splitlines()[-1].startswith("perfd: @API-CLIENT: 1 sent, 0 from cache · ")
    sent = server.records[-1].body["messages"][0]["content"]
    assert "Retries ignore Retry-After" in sent  # the FIX file's critical issue is quoted
    # The same call again is a cache hit: no request reaches the server, and the run says so from its first line.
    before = len(server.records)
    code, out2, err2 = run(ws, server, "@API-CLIENT", "--next")
    assert code == 0 and out2 == out and len(server.records) == before
    assert "sending" not in err2 and "1.2 (fix_pending): answer from the response cache" in err2.splitlines()[0]
    tokens = int(err.splitlines()[-1].split(" · ")[1].split()[0])
    assert f"  1.2  fix_pending  from cache · {tokens} tokens saved (nothing sent)" in err2
    assert err2.splitlines()[-1].startswith(f"perfd: @API-CLIENT: 0 sent, 1 from cache · 0 tokens paid · saved {tokens} tokens")
    # --no-cache goes to the server again.
    run(ws, server, "@API-CLIENT", "--next", "--no-cache")
    assert len(server.records) == before + 1


def test_write_saves_the_file_the_state_asks_for_and_the_state_moves_on(ws: Path, server: FakeServer) -> None:
    folder = ws / "work-space" / "plans" / "a_real-use-cases" / "DOCS-SITE"
    code, out, err = run(ws, server, "@DOCS-SITE", "2.2", "--write")
    assert code == 0, err
    assert (folder / "subplans" / "SUBPLAN_DOCS-SITE_22.md").read_text() == out
    # With its SUBPLAN written, 2.2 now asks for its first EXECUTION_TASK.
    code, out, err = run(ws, server, "@DOCS-SITE", "2.2", "--write")
    assert code == 0, err
    assert (folder / "execution" / "EXECUTION_TASK_DOCS-SITE_22_01.md").read_text() == out


def test_write_refuses_to_overwrite_without_force(ws: Path, server: FakeServer) -> None:
    # A fix asks for FIX_12_RESOLUTION.md; one older than the FIX (a previous review round's) does not answer
    # it, so the state still asks for that file, and the old one is not overwritten without --force.
    target = ws / "work-space" / "plans" / "API-CLIENT" / "execution" / "feedbacks" / "FIX_12_RESOLUTION.md"
    target.write_text("my own notes\n")
    fix_mtime = (target.parent / "FIX_12.md").stat().st_mtime
    os.utime(target, (fix_mtime - 3600, fix_mtime - 3600))
    code, _, err = run(ws, server, "@API-CLIENT", "--next", "--write")
    assert code == 1 and "exists; not overwritten" in err and "--force" in err
    assert target.read_text() == "my own notes\n"
    code, out, _ = run(ws, server, "@API-CLIENT", "--next", "--write", "--force")
    assert code == 0 and target.read_text() == out


def test_write_refuses_a_state_that_asks_for_no_file(ws: Path, server: FakeServer) -> None:
    code, _, err = run(ws, server, "@SEARCH-INDEX", "--next", "--write")
    assert code == 1 and "asks for no new file" in err


def test_parallel_runs_the_ready_level_under_the_limit(ws: Path, server: FakeServer) -> None:
    server.settings.latency_s = 0.2
    code, out, err = run(ws, server, "@DOCS-SITE", "--parallel", "--concurrency", "2", "--write")
    assert code == 0, err
    # 2.1, 2.2 and 2.3 depend only on 1.1 (approved); 3.1 waits for them.
    assert "running 3 achievements (2.1, 2.2, 2.3), at most 2 at once" in err
    assert server.max_in_flight <= 2
    subplans = ws / "work-space" / "plans" / "a_real-use-cases" / "DOCS-SITE" / "subplans"
    assert sorted(p.name for p in subplans.iterdir()) == [
        "SUBPLAN_DOCS-SITE_11.md", "SUBPLAN_DOCS-SITE_21.md", "SUBPLAN_DOCS-SITE_22.md", "SUBPLAN_DOCS-SITE_23.md"]
    prompts = [r.body["messages"][0]["content"] for r in server.records]
    assert not any("3.1" in p.split("\n")[0] for p in prompts)


def test_parallel_failure_leaves_the_others_intact(ws: Path, server: FakeServer) -> None:
    plan = ws / "work-space" / "plans" / "a_real-use-cases" / "DOCS-SITE" / "PLAN_DOCS-SITE.md"
    plan.write_text(plan.read_text().replace("Achievement 2.2: Tutorials", "Achievement 2.2: Tutorials !fail"))
    code, _, err = run(ws, server, "@DOCS-SITE", "--parallel", "--write")
    assert code == 3
    assert "2.2" in err and "failed" in err
    subplans = ws / "work-space" / "plans" / "a_real-use-cases" / "DOCS-SITE" / "subplans"
    names = sorted(p.name for p in subplans.iterdir())
    assert "SUBPLAN_DOCS-SITE_21.md" in names and "SUBPLAN_DOCS-SITE_23.md" in names
    assert "SUBPLAN_DOCS-SITE_22.md" not in names


def test_parallel_with_a_number_is_a_usage_error(ws: Path, server: FakeServer) -> None:
    code, _, err = run(ws, server, "@DOCS-SITE", "2.1", "--parallel")
    assert code == 2


def test_parallel_prints_every_answer_under_its_header_in_achievement_order(ws: Path, server: FakeServer) -> None:
    code, out, err = run(ws, server, "@DOCS-SITE", "--parallel")
    assert code == 0, err
    heads = [line for line in out.splitlines() if line.startswith("==> ")]
    assert heads == ["==> @DOCS-SITE 2.1 (no_subplan) <==", "==> @DOCS-SITE 2.2 (no_subplan) <==",
                     "==> @DOCS-SITE 2.3 (no_subplan) <=="]
    # Every answer paid for is on stdout, each under its own header.
    answers = out.split("==> ")[1:]
    assert len(answers) == 3 and all("\nreply#" in a for a in answers)
    for number, answer in zip(("2.1", "2.2", "2.3"), answers):
        assert f"achievement {number}" in answer.split("\n", 1)[1]
    # The summary names each achievement with how it was served, its tokens and its time.
    for number in ("2.1", "2.2", "2.3"):
        assert any(line.startswith(f"  {number}  no_subplan  sent · ") and " tokens · " in line
                   for line in err.splitlines())
    # Again: every answer comes from the cache, and says so.
    code, out2, err2 = run(ws, server, "@DOCS-SITE", "--parallel")
    assert code == 0 and out2 == out
    assert sum(line.startswith("  ") and " from cache · " in line for line in err2.splitlines()) == 3
    assert "(3 from the response cache, not sent)" in err2.splitlines()[0]
    # Every run ends with one total line: sent or cached, tokens paid and saved, seconds.
    assert err2.splitlines()[-1].startswith("perfd: @DOCS-SITE: 0 sent, 3 from cache · 0 tokens paid · saved ")


def test_parallel_write_names_each_file_it_wrote(ws: Path, server: FakeServer) -> None:
    code, out, err = run(ws, server, "@DOCS-SITE", "--parallel", "--write")
    assert code == 0, err
    subplans = ws / "work-space" / "plans" / "a_real-use-cases" / "DOCS-SITE" / "subplans"
    for number, answer in zip(("21", "22", "23"), out.split("==> ")[1:]):
        name = f"SUBPLAN_DOCS-SITE_{number}.md"
        assert f"-> wrote work-space/plans/a_real-use-cases/DOCS-SITE/subplans/{name}" in err
        assert (subplans / name).read_text() == answer.split("\n", 1)[1].rstrip("\n") + "\n"


def test_parallel_failure_prints_the_other_answers_and_names_the_failure(ws: Path, server: FakeServer) -> None:
    plan = ws / "work-space" / "plans" / "a_real-use-cases" / "DOCS-SITE" / "PLAN_DOCS-SITE.md"
    plan.write_text(plan.read_text().replace("Achievement 2.2: Tutorials", "Achievement 2.2: Tutorials !fail"))
    code, out, err = run(ws, server, "@DOCS-SITE", "--parallel", "--write")
    assert code == 3
    assert out.count("\nreply#") == 2 and "==> @DOCS-SITE 2.2 (no_subplan) <==\n(no answer: " in out
    failed = [line for line in err.splitlines() if line.startswith("  2.2  ")]
    assert len(failed) == 1 and "failed (" in failed[0]


def test_json_gives_one_line_per_achievement_then_a_summary(ws: Path, server: FakeServer) -> None:
    import json

    code, out, err = run(ws, server, "@DOCS-SITE", "--parallel", "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [a["achievement"] for a in lines[:-1]] == ["2.1", "2.2", "2.3"]
    assert all(a["ok"] and a["text"].startswith("reply#") and a["tokens"] > 0 and a["cached"] is False
               for a in lines[:-1])
    summary = lines[-1]["summary"]
    assert summary["achievements"] == 3 and summary["failed"] == 0 and summary["code"] == 0
    assert summary["tokens"] == sum(a["tokens"] for a in lines[:-1]) and summary["cost"] is None
    code, out, _ = run(ws, server, "@API-CLIENT", "--next", "--json")
    [answer, last] = [json.loads(line) for line in out.splitlines()]
    assert answer["achievement"] == "1.2" and answer["text"].startswith("reply#") and last["summary"]["achievements"] == 1


def test_prices_give_a_cost_per_achievement(ws: Path, server: FakeServer) -> None:
    import json

    out_io, err_io = io.StringIO(), io.StringIO()
    env = {**env_for(server), "PERFD_LLM_PRICE_PROMPT_PER_1K": "0.5", "PERFD_LLM_PRICE_COMPLETION_PER_1K": "1.5"}
    code = main(["run", "@DOCS-SITE", "--parallel", "--json"], str(ws), out=out_io, err=err_io, env=env)
    assert code == 0, err_io.getvalue()
    lines = [json.loads(line) for line in out_io.getvalue().splitlines()]
    for a in lines[:-1]:
        assert a["cost"] == (a["prompt_tokens"] * 0.5 + a["completion_tokens"] * 1.5) / 1000
    assert " · cost " in err_io.getvalue()


def test_progress_lines_redraw_in_place_on_a_terminal() -> None:
    from perfd.app.run_render import Progress
    from perfd.wire.protocol import RunAnswer

    err = io.StringIO()
    now = [0.0]
    p = Progress(err, ["2.1", "2.2"], tty=True, clock=lambda: now[0])
    p.started_one("2.1")
    p.draw(force=True)
    now[0] = 1.0
    p.delta("2.1", "abc")
    p.finished(RunAnswer(plan="P", achievement="2.1", state="no_subplan", ok=True, text="abc", seconds=1.0))
    screen = err.getvalue()
    assert screen.count("\x1b[2F") == 2  # each redraw goes back up over the two lines
    last = screen.rsplit("\x1b[2F", 1)[1]
    assert "2.1" in last and "done" in last and "3 chars" in last and "2.2" in last and "waiting" in last
    plain = io.StringIO()
    q = Progress(plain, ["2.1"], tty=False)
    q.delta("2.1", "x")
    q.finished(RunAnswer(plan="P", achievement="2.1", state="s", ok=False, error="boom"))
    assert plain.getvalue() == "perfd: [1/1] 2.1 failed: boom\n" and "\x1b" not in plain.getvalue()


def test_an_unset_api_key_is_a_configuration_error_before_anything_is_sent(ws: Path, server: FakeServer) -> None:
    env = {**env_for(server), "PERFD_LLM_API_KEY_ENV": "PERFD_TEST_UNSET_KEY"}
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", "@API-CLIENT", "--next"], str(ws), out=out, err=err, env=env)
    assert code == 1 and not server.records and out.getvalue() == ""
    assert err.getvalue().count("PERFD_TEST_UNSET_KEY") == 1 and "sending" not in err.getvalue()
    assert err.getvalue().startswith("perfd: [llm] configuration: the environment variable PERFD_TEST_UNSET_KEY")


def test_a_missing_model_is_a_configuration_error(ws: Path, server: FakeServer) -> None:
    env = {k: v for k, v in env_for(server).items() if k != "PERFD_LLM_MODEL"}
    out, err = io.StringIO(), io.StringIO()
    assert main(["run", "@API-CLIENT", "--next"], str(ws), out=out, err=err, env=env) == 1
    assert "model is required" in err.getvalue() and not server.records


def test_a_plan_name_with_control_characters_never_reaches_the_terminal_raw(ws: Path, server: FakeServer) -> None:
    """Headers, progress and the summary escape the plan's name (a folder named with ESC or a newline)."""
    group = ws / "work-space" / "plans" / "a_real-use-cases"
    odd = "DOCS\x1b[2J\nX"
    (group / "DOCS-SITE" / "PLAN_DOCS-SITE.md").rename(group / "DOCS-SITE" / f"PLAN_{odd}.md")
    (group / "DOCS-SITE").rename(group / odd)
    code, out, err = run(ws, server, "@DOCS", "--parallel")
    assert code == 0, err
    assert "\x1b" not in err and "\\e[2J\\nX" in err
    heads = [line for line in out.splitlines() if line.startswith("==> ")]
    assert len(heads) == 3 and all("\x1b" not in h and "\\e[2J\\nX" in h for h in heads)
