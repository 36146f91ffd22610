"""perfd.run over LSP (standalone `python -m perfd.lsp`), against the fake OpenAI-compatible server.

The command streams the answer as work-done progress (partial text in the
report messages) and returns the whole text; without a model it answers an
error that says how to configure one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "llm"))
from fakeserver import FakeServer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")


@dataclass
class Setup:
    ws: str  # the example, with an [llm] pointing at the fake server
    bare: str  # the example without [llm]: perfd.run must say how to configure a model
    env: dict[str, str]  # the language server's environment


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeServer]:
    with FakeServer(max_lifetime_s=120) as server:
        server.settings.chunks = 6
        yield server


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, llm_server: FakeServer) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("lsprun")
    ws, bare = str(base / "ws"), str(base / "bare")
    shutil.copytree(EXAMPLE, ws)
    shutil.copytree(EXAMPLE, bare)
    Path(ws, "perfd.toml").write_text(f'[llm]\nbase_url = "{llm_server.base_url}"\nmodel = "fake-model"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFD_")}
    env["PERFD_STATE_DIR"] = str(base / "state")
    # the workspace names the model server: the user trusts it, as `perfd trust` records
    subprocess.run([sys.executable, "-m", "perfd", "trust", "--root", str(ws)], env=env, check=True,
                   capture_output=True, timeout=30)
    yield Setup(ws, bare, env)
    shutil.rmtree(base, ignore_errors=True)


def _caps() -> lsp.ClientCapabilities:
    return lsp.ClientCapabilities(window=lsp.WindowClientCapabilities(work_done_progress=True))


async def _editor(root: str, env: dict[str, str]) -> LanguageClient:
    """`python -m perfd.lsp --root ROOT`, started and initialized (what pytest_lsp.fixture does, with a root
    known only once the fixtures above have run)."""
    client = await ClientServerConfig(server_command=[sys.executable, "-m", "perfd.lsp", "--root", root],
                                      server_env=env).start()
    assert isinstance(client, LanguageClient)
    await client.initialize_session(lsp.InitializeParams(capabilities=_caps(), root_uri="file://" + root))
    return client


@pytest.fixture
async def client(setup: Setup) -> AsyncIterator[LanguageClient]:
    c = await _editor(setup.ws, setup.env)
    yield c
    await c.shutdown_session()
    await c.stop()


async def test_run_streams_progress_and_returns_the_answer(client: LanguageClient, llm_server: FakeServer) -> None:
    before = len(llm_server.records)
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE", "2.1"]))
    assert result["achievement"] == "2.1" and result["state"] == "no_subplan"
    assert result["text"].startswith("reply#") and result["tokens"] > 0 and result["cached"] is False
    assert len(llm_server.records) == before + 1
    sent = llm_server.records[-1].body["messages"][0]["content"]
    assert "2.1" in sent
    (token, reports), = [(t, r) for t, r in client.progress_reports.items() if str(t).startswith("perfd.run/")]
    assert isinstance(reports[0], lsp.WorkDoneProgressBegin) and "2.1" in reports[0].title
    assert isinstance(reports[-1], lsp.WorkDoneProgressEnd)
    messages = [r.message for r in reports if isinstance(r, lsp.WorkDoneProgressReport)]
    assert messages and messages[-1] == result["text"]  # the partial text, up to the whole answer
    assert all(result["text"].startswith(m or "") for m in messages)

    # Again: the session's client has a response cache.
    again = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE", "2.1"]))
    assert again["text"] == result["text"] and again["cached"] is True and len(llm_server.records) == before + 1


async def test_run_of_an_unknown_plan_is_an_error(client: LanguageClient) -> None:
    from pygls.exceptions import JsonRpcException

    with pytest.raises(JsonRpcException, match="NO-SUCH") as info:
        await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="perfd.run", arguments=["@NO-SUCH"]))
    # A clear message and perfd's error code, never a Python traceback in the error data.
    err = info.value
    assert err.code == -32803 and "Traceback" not in err.message and "UserError" not in err.message
    assert isinstance(err.data, dict) and "traceback" not in err.data and err.data["code"] == "unknown-plan"


async def test_run_follows_the_run_services_rules(client: LanguageClient, llm_server: FakeServer) -> None:
    """The same rules as `perfd run`: a complete achievement sends nothing, a blocked one is refused
    unless {"blockedOk": true}, and the prompt carries the files it names."""
    from pygls.exceptions import JsonRpcException

    before = len(llm_server.records)
    done = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE", "1.1"]))
    assert done["achievement"] is None and done["nothing_to_do"] is True and done["state"] == "complete"
    with pytest.raises(JsonRpcException, match="waits on") as info:
        await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE", "3.1"]))
    assert isinstance(info.value.data, dict) and info.value.data["code"] == "blocked"
    assert len(llm_server.records) == before
    sent = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE", "3.1", {"blockedOk": True}]))
    assert sent["achievement"] == "3.1" and len(llm_server.records) == before + 1
    assert "(achievement 3.1's section)" in llm_server.records[-1].body["messages"][0]["content"]


@pytest.fixture
async def bare_client(setup: Setup) -> AsyncIterator[LanguageClient]:
    c = await _editor(setup.bare, setup.env)
    yield c
    await c.shutdown_session()
    await c.stop()


async def test_without_a_model_run_says_how_to_configure_one(bare_client: LanguageClient) -> None:
    with pytest.raises(Exception) as info:
        await bare_client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE"]))
    text = str(info.value)
    assert "no model is configured" in text and "PERFD_LLM_BASE_URL" in text and "[llm]" in text



@pytest.fixture
async def client_shut_by_test(setup: Setup) -> AsyncIterator[LanguageClient]:
    c = await _editor(setup.ws, setup.env)
    yield c  # the test shuts the session down itself
    await c.stop()


async def test_history_is_committed_when_the_session_shuts_down(client_shut_by_test: LanguageClient,
                                                                 setup: Setup) -> None:
    client = client_shut_by_test
    await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE", "2.2"]))
    await client.shutdown_session()
    from perfd.llm import open_history

    history = open_history(os.path.join(setup.env["PERFD_STATE_DIR"], "llm-history.sqlite3"))
    try:
        assert any(c.achievement == "2.2" for c in history.calls(plan="DOCS-SITE"))
    finally:
        history.close()
