"""`perfd run`: prompt -> model -> streamed answer, --write, --parallel, against the fake server."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from fakeserver import FakeServer

from perfd.app.run import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "daemon" / "perfd" / "example"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(EXAMPLE, root)
    return root


def env_for(server: FakeServer) -> dict[str, str]:
    return {"PERFD_LLM_BASE_URL": server.base_url, "PERFD_LLM_MODEL": "fake-model",
            "PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"]}


def run(ws: Path, server: FakeServer | None, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = env_for(server) if server else {"PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"]}
    code = main(["run", *argv], str(ws), out=out, err=err, env=env)
    return code, out.getvalue(), err.getvalue()


def test_without_a_provider_it_says_how_to_configure(ws: Path) -> None:
    code, out, err = run(ws, None, "@API-CLIENT", "--next")
    assert code == 1
    assert "no model is configured" in err and "PERFD_LLM_BASE_URL" in err and "[llm]" in err


def test_streams_the_answer_to_the_prompt_of_the_next_step(ws: Path, server: FakeServer) -> None:
    code, out, err = run(ws, server, "@API-CLIENT", "--next")
    assert code == 0, err
    assert out.startswith("reply#") and "Address the review of achievement 1.2" in out
    assert "sending achievement 1.2 (fix_pending) to fake-model" in err
    sent = server.records[-1].body["messages"][0]["content"]
    assert "Retries ignore Retry-After" in sent  # the FIX file's critical issue is quoted
    # The same call again is a cache hit: no request reaches the server.
    before = len(server.records)
    code, out2, _ = run(ws, server, "@API-CLIENT", "--next")
    assert code == 0 and out2 == out and len(server.records) == before
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
    # A fix asks for FIX_12_RESOLUTION.md, which does not change the state when it exists.
    target = ws / "work-space" / "plans" / "API-CLIENT" / "execution" / "feedbacks" / "FIX_12_RESOLUTION.md"
    target.write_text("my own notes\n")
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
