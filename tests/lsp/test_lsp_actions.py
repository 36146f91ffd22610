"""Code actions, the SUBPLAN scaffold, live runs and change notifications over LSP.

A standalone `python -m perfd.lsp --root WS` on a copy of the example, with
an [llm] pointing at the stand-in model server: textDocument/codeAction on a
PLAN, perfd.createSubplan (written, opened, never overwritten, never outside
the workspace), perfd.run streaming perfd/runChunk notifications and being
cancelled mid-stream, and perfd/plansChanged after a file changes on disk.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Union

import pytest
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "llm"))
from fakeserver import FakeServer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")
DOCS = os.path.join("work-space", "plans", "a_real-use-cases", "DOCS-SITE")


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeServer]:
    with FakeServer(max_lifetime_s=120) as server:
        yield server


@pytest.fixture
def ws(tmp_path: Path, llm_server: FakeServer) -> str:
    root = tmp_path / "ws"
    shutil.copytree(EXAMPLE, root)
    (root / "perfd.toml").write_text(f'[llm]\nbase_url = "{llm_server.base_url}"\nmodel = "fake-model"\n'
                                     f'[models.other]\nbase_url = "{llm_server.base_url}"\nmodel = "other-model"\n')
    return str(root)


@pytest.fixture
async def client(ws: str, tmp_path: Path) -> AsyncIterator[LanguageClient]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFD_")}
    env["PERFD_STATE_DIR"] = str(tmp_path / "state")
    # the workspace names the stand-in model server: the user trusts it, as `perfd trust` records
    subprocess.run([sys.executable, "-m", "perfd", "trust", "--root", ws], env=env, check=True,
                   capture_output=True, timeout=30)
    c = await ClientServerConfig(server_command=[sys.executable, "-m", "perfd.lsp", "--root", ws],
                                 server_env=env).start()
    assert isinstance(c, LanguageClient)
    _fix_code_action_union(c)
    c.notes: dict[str, list[Any]] = {}  # type: ignore[misc]

    for method in ("perfd/runChunk", "perfd/plansChanged"):
        @c.feature(method)
        def _note(params: Any, method: str = method) -> None:
            c.notes.setdefault(method, []).append(params)  # type: ignore[attr-defined]

    caps = lsp.ClientCapabilities(window=lsp.WindowClientCapabilities(
        work_done_progress=True, show_document=lsp.ShowDocumentClientCapabilities(support=True)))
    await c.initialize_session(lsp.InitializeParams(capabilities=caps, root_uri="file://" + ws))
    yield c
    await c.shutdown_session()
    await c.stop()


def _fix_code_action_union(c: LanguageClient) -> None:
    """lsprotocol reads any code action that carries a command as a bare Command (its hook tests
    only for a "command" key); tell them apart as the LSP spec does: a Command's command is a string."""
    converter = c.protocol._converter

    def hook(obj: Any, _: type) -> lsp.Command | lsp.CodeAction:
        if isinstance(obj.get("command"), str):
            return converter.structure(obj, lsp.Command)  # type: ignore[no-any-return]
        return converter.structure(obj, lsp.CodeAction)  # type: ignore[no-any-return]

    converter.register_structure_hook(Union[lsp.Command, lsp.CodeAction], hook)


def _plan(ws: str) -> str:
    return os.path.join(ws, DOCS, "PLAN_DOCS-SITE.md")


def _open(client: LanguageClient, path: str) -> str:
    uri = Path(path).as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(
        uri=uri, language_id="markdown", version=1, text=Path(path).read_text(encoding="utf-8"))))
    return uri


def _line_of(path: str, text: str) -> int:
    """0-based line of the first line that is exactly `text`."""
    return Path(path).read_text(encoding="utf-8").split("\n").index(text)


async def _actions(client: LanguageClient, uri: str, line: int) -> list[lsp.CodeAction]:
    got = await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), range=lsp.Range(lsp.Position(line, 0), lsp.Position(line, 0)),
        context=lsp.CodeActionContext(diagnostics=[])))
    assert all(isinstance(a, lsp.CodeAction) for a in got or []), got
    return [a for a in got or [] if isinstance(a, lsp.CodeAction)]


async def test_code_actions_then_create_subplan_writes_and_opens_it(client: LanguageClient, ws: str) -> None:
    plan = _plan(ws)
    uri = _open(client, plan)
    line = next(i for i, t in enumerate(Path(plan).read_text().split("\n")) if t.startswith("- Achievement 2.1"))
    actions = await _actions(client, uri, line)
    titles = [a.title for a in actions]
    assert "Copy prompt for 2.1" in titles and "Create SUBPLAN for 2.1" in titles
    create = next(a for a in actions if a.title == "Create SUBPLAN for 2.1")
    assert create.command is not None and create.command.command == "perfd.createSubplan"

    result = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command=create.command.command, arguments=create.command.arguments))
    target = os.path.join(ws, DOCS, "subplans", "SUBPLAN_DOCS-SITE_21.md")
    assert os.path.realpath(result["path"]) == os.path.realpath(target) and result["shown"] is True
    text = Path(target).read_text(encoding="utf-8")
    assert text.startswith("# SUBPLAN: Achievement 2.1 - ") and "**Achievement**: 2.1" in text
    assert "**PLAN**: DOCS-SITE" in text and "{{" not in text
    assert [d.uri for d in client.shown_documents] == [Path(os.path.realpath(target)).as_uri()]
    assert not [f for f in os.listdir(os.path.dirname(target)) if f.startswith(".perfd-")]  # no temp file left

    # Now 2.1 has its SUBPLAN: no "Create" on offer, and asking anyway changes nothing.
    after = [a.title for a in await _actions(client, uri, line)]
    assert "Create SUBPLAN for 2.1" not in after and "Open SUBPLAN for 2.1" in after
    Path(target).write_text("mine\n", encoding="utf-8")
    with pytest.raises(Exception, match="SUBPLAN already"):
        await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
            command="perfd.createSubplan", arguments=[plan, "2.1"]))
    assert Path(target).read_text(encoding="utf-8") == "mine\n"


async def test_create_subplan_never_writes_outside_the_workspace(client: LanguageClient, ws: str,
                                                                 tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    subplans = Path(ws, DOCS, "subplans")
    shutil.rmtree(subplans)
    subplans.symlink_to(outside, target_is_directory=True)  # the folder leads out of the workspace
    with pytest.raises(Exception, match="outside the workspace"):
        await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
            command="perfd.createSubplan", arguments=["@DOCS-SITE", "2.1"]))
    assert list(outside.iterdir()) == []


async def test_create_subplan_refuses_a_name_taken_by_a_dangling_link(client: LanguageClient, ws: str,
                                                                      tmp_path: Path) -> None:
    target = Path(ws, DOCS, "subplans", "SUBPLAN_DOCS-SITE_21.md")
    target.parent.mkdir(exist_ok=True)
    target.symlink_to(tmp_path / "nowhere.md")  # a link to a file that does not exist: never followed
    with pytest.raises(Exception, match="exists; not overwritten|SUBPLAN already|outside the workspace"):
        await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
            command="perfd.createSubplan", arguments=["@DOCS-SITE", "2.1"]))
    assert not (tmp_path / "nowhere.md").exists()


async def test_open_file_stays_inside_the_workspace(client: LanguageClient, ws: str) -> None:
    with pytest.raises(Exception, match="outside the workspace"):
        await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
            command="perfd.openFile", arguments=["/etc/passwd"]))
    fix = os.path.join(ws, "work-space", "plans", "API-CLIENT", "execution", "feedbacks", "FIX_12.md")
    got = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command="perfd.openFile", arguments=[fix]))
    assert got["shown"] is True and client.shown_documents[-1].uri == Path(fix).as_uri()


async def test_run_streams_chunks_before_it_answers(client: LanguageClient, llm_server: FakeServer) -> None:
    llm_server.settings.chunks, llm_server.settings.stream_delay_s = 5, 0.05
    try:
        result = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
            command="perfd.run", arguments=["@DOCS-SITE", "2.1", {"stream": "s1"}]))
    finally:
        llm_server.settings.chunks, llm_server.settings.stream_delay_s = 4, 0.0
    chunks = client.notes.get("perfd/runChunk", [])  # type: ignore[attr-defined]
    assert len(chunks) >= 5 and all(c.id == "s1" and c.achievement == "2.1" for c in chunks)
    assert "".join(c.text for c in chunks) == result["text"]
    assert result["write_path"].endswith("SUBPLAN_DOCS-SITE_21.md")
    # the progress reports only count what the chunks carry
    (reports,) = [r for t, r in client.progress_reports.items() if str(t).startswith("perfd.run/")]
    counts = [r.message for r in reports if isinstance(r, lsp.WorkDoneProgressReport)]
    assert counts and counts[-1] == f"{len(result['text'])} characters"


async def test_run_takes_a_named_model(client: LanguageClient, llm_server: FakeServer) -> None:
    result = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command="perfd.run", arguments=["@DOCS-SITE", "2.2", {"model": "other"}]))
    assert result["text"].startswith("reply#") and llm_server.records[-1].body["model"] == "other-model"
    with pytest.raises(Exception, match="no model named 'nope'"):
        await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
            command="perfd.run", arguments=["@DOCS-SITE", "2.2", {"model": "nope"}]))


async def test_models_names_what_perfd_run_takes(client: LanguageClient, ws: str) -> None:
    got = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(command="perfd.models"))
    assert got == {"models": ["other"], "waiting": []}
    # A model the workspace adds after the user's trust waits for `perfd trust`: named apart, not offered.
    with open(os.path.join(ws, "perfd.toml"), "a", encoding="utf-8") as f:
        f.write('[models.third]\nbase_url = "http://127.0.0.1:9"\nmodel = "third-model"\n')
    got = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(command="perfd.models"))
    assert "third" in got["waiting"] and "third" not in got["models"]


async def test_write_answer_follows_the_write_rules(client: LanguageClient, ws: str) -> None:
    target = Path(ws, DOCS, "subplans", "SUBPLAN_DOCS-SITE_21.md")
    got = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command="perfd.writeAnswer", arguments=["@DOCS-SITE", "2.1", "# SUBPLAN: from the model"]))
    assert os.path.realpath(got["path"]) == os.path.realpath(target)
    assert target.read_text(encoding="utf-8") == "# SUBPLAN: from the model\n"
    # API-CLIENT 1.2 has a FIX pending: its answer goes to FIX_12_RESOLUTION.md. A resolution there answers
    # the FIX (the state moves on); a link of that name leading out of the workspace is not read, so the
    # FIX stays pending, and writing through the link is refused: it is neither followed nor replaced.
    other = Path(ws, "work-space", "plans", "API-CLIENT", "execution", "feedbacks", "FIX_12_RESOLUTION.md")
    theirs = Path(ws).parent / "theirs-outside.md"
    theirs.write_text("theirs\n", encoding="utf-8")
    other.symlink_to(theirs)
    with pytest.raises(Exception, match="is outside the workspace"):
        await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
            command="perfd.writeAnswer", arguments=["@API-CLIENT", "1.2", "mine"]))
    assert other.is_symlink() and theirs.read_text(encoding="utf-8") == "theirs\n"


@pytest.mark.parametrize("how", ["$/cancelRequest", "window/workDoneProgress/cancel"])
async def test_a_run_cancelled_mid_stream_closes_the_model_call(client: LanguageClient, llm_server: FakeServer,
                                                               how: str) -> None:
    llm_server.settings.chunks, llm_server.settings.stream_delay_s = 50, 0.2  # about ten seconds of answer
    closed = llm_server.closed_by_client
    try:
        msg_id = "run-to-cancel"
        pending = asyncio.ensure_future(client.protocol.send_request_async(
            lsp.WORKSPACE_EXECUTE_COMMAND,
            lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE", "2.1", {"stream": "c1"}]),
            msg_id=msg_id))
        for _ in range(200):
            if client.notes.get("perfd/runChunk"):  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.025)
        assert client.notes.get("perfd/runChunk"), "no chunk before the cancel"  # type: ignore[attr-defined]
        if how == "$/cancelRequest":
            client.protocol.notify("$/cancelRequest", lsp.CancelParams(id=msg_id))
        else:
            (token,) = [t for t in client.progress_reports if str(t).startswith("perfd.run/")]
            client.window_work_done_progress_cancel(lsp.WorkDoneProgressCancelParams(token=token))
        with pytest.raises(Exception, match="cancel"):
            await asyncio.wait_for(pending, 5)
        for _ in range(100):  # the model call's connection is closed, long before the answer would end
            if llm_server.closed_by_client > closed:
                break
            await asyncio.sleep(0.05)
        assert llm_server.closed_by_client > closed
    finally:
        llm_server.settings.chunks, llm_server.settings.stream_delay_s = 4, 0.0
    # the session goes on serving
    st = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(command="perfd.status"))
    assert len(st["plans"]) == 4


async def test_a_change_on_disk_notifies_plans_changed(client: LanguageClient, ws: str) -> None:
    approved = Path(ws, "work-space", "plans", "API-CLIENT", "execution", "feedbacks", "APPROVED_12.md")
    await asyncio.sleep(0.3)  # the watcher starts on initialized
    approved.write_text("# APPROVED: Achievement 1.2\n", encoding="utf-8")
    for _ in range(100):
        notes = client.notes.get("perfd/plansChanged", [])  # type: ignore[attr-defined]
        if any(str(approved) in n.paths or os.path.realpath(approved) in n.paths for n in notes):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"no perfd/plansChanged naming {approved}: {notes}")
    assert notes[-1].root == os.path.realpath(ws) or notes[-1].root == ws
    st = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(command="perfd.status",
                                                                               arguments=["@API-CLIENT"]))
    assert st["next"] != "1.2"
