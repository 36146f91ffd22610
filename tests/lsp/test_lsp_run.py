"""perfd.run over LSP (standalone `python -m perfd.lsp`), against the fake OpenAI-compatible server.

The command streams the answer as work-done progress (partial text in the
report messages) and returns the whole text; without a model it answers an
error that says how to configure one.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "llm"))
from fakeserver import FakeServer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")

BASE = tempfile.mkdtemp(prefix="perfd-lsprun-")
WS = os.path.join(BASE, "ws")
BARE = os.path.join(BASE, "bare")  # no [llm]: perfd.run must say how to configure a model
shutil.copytree(EXAMPLE, WS)
shutil.copytree(EXAMPLE, BARE)
SERVER = FakeServer(max_lifetime_s=120)
SERVER.__enter__()
SERVER.settings.chunks = 6
with open(os.path.join(WS, "perfd.toml"), "w") as f:
    f.write(f'[llm]\nbase_url = "{SERVER.base_url}"\nmodel = "fake-model"\n')
ENV = {k: v for k, v in os.environ.items() if not k.startswith("PERFD_")}
ENV["PERFD_STATE_DIR"] = os.path.join(BASE, "state")


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    SERVER.__exit__(None, None, None)
    shutil.rmtree(BASE, ignore_errors=True)


def _caps() -> lsp.ClientCapabilities:
    return lsp.ClientCapabilities(window=lsp.WindowClientCapabilities(work_done_progress=True))


def _server(root: str) -> ClientServerConfig:
    return ClientServerConfig(server_command=[sys.executable, "-m", "perfd.lsp", "--root", root], server_env=ENV)


async def _initialize(lsp_client: LanguageClient, root: str) -> None:
    await lsp_client.initialize_session(lsp.InitializeParams(capabilities=_caps(), root_uri="file://" + root))


@pytest_lsp.fixture(config=_server(WS))
async def client(lsp_client: LanguageClient):
    await _initialize(lsp_client, WS)
    yield
    await lsp_client.shutdown_session()


async def test_run_streams_progress_and_returns_the_answer(client: LanguageClient) -> None:
    before = len(SERVER.records)
    result = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE", "2.1"]))
    assert result["achievement"] == "2.1" and result["state"] == "no_subplan"
    assert result["text"].startswith("reply#") and result["tokens"] > 0 and result["cached"] is False
    assert len(SERVER.records) == before + 1
    sent = SERVER.records[-1].body["messages"][0]["content"]
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
    assert again["text"] == result["text"] and again["cached"] is True and len(SERVER.records) == before + 1


async def test_run_of_an_unknown_plan_is_an_error(client: LanguageClient) -> None:
    with pytest.raises(Exception, match="NO-SUCH"):
        await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="perfd.run", arguments=["@NO-SUCH"]))


@pytest_lsp.fixture(config=_server(BARE))
async def bare_client(lsp_client: LanguageClient):
    await _initialize(lsp_client, BARE)
    yield
    await lsp_client.shutdown_session()


async def test_without_a_model_run_says_how_to_configure_one(bare_client: LanguageClient) -> None:
    with pytest.raises(Exception) as info:
        await bare_client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE"]))
    text = str(info.value)
    assert "no model is configured" in text and "PERFD_LLM_BASE_URL" in text and "[llm]" in text



@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "perfd.lsp", "--root", WS],
                                              server_env=ENV))
async def client_shut_by_test(lsp_client: LanguageClient):
    await lsp_client.initialize_session(lsp.InitializeParams(capabilities=_caps(), root_uri="file://" + WS))
    yield  # the test shuts the session down itself


async def test_history_is_committed_when_the_session_shuts_down(client_shut_by_test: LanguageClient) -> None:
    client = client_shut_by_test
    await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE", "2.2"]))
    await client.shutdown_session()
    from perfd.llm import open_history

    history = open_history(os.path.join(ENV["PERFD_STATE_DIR"], "llm-history.sqlite3"))
    try:
        assert any(c.achievement == "2.2" for c in history.calls(plan="DOCS-SITE"))
    finally:
        history.close()
