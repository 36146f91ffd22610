"""End-to-end: pytest-lsp drives `python -m perfd.lsp` (standalone) on a copy of the example workspace."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private copy per test module: some tests create review files in it."""
    root = str(tmp_path_factory.mktemp("lsp") / "ws")
    shutil.copytree(EXAMPLE, root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def api_plan(ws: str) -> str:
    return os.path.join(ws, "work-space", "plans", "API-CLIENT", "PLAN_API-CLIENT.md")


@pytest.fixture
async def client(ws: str) -> AsyncIterator[LanguageClient]:
    """`python -m perfd.lsp --root WS`, initialized (as pytest_lsp.fixture does, once `ws` exists)."""
    c = await ClientServerConfig(server_command=[sys.executable, "-m", "perfd.lsp", "--root", ws]).start()
    assert isinstance(c, LanguageClient)
    caps = lsp.ClientCapabilities(workspace=lsp.WorkspaceClientCapabilities(
        code_lens=lsp.CodeLensWorkspaceClientCapabilities(refresh_support=True)))
    await c.initialize_session(lsp.InitializeParams(capabilities=caps, root_uri="file://" + ws))
    yield c
    await c.shutdown_session()
    await c.stop()


def _open(client: LanguageClient, path: str, text: str | None = None) -> str:
    uri = "file://" + path
    if text is None:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        text_document=lsp.TextDocumentItem(uri=uri, language_id="markdown", version=1, text=text)))
    return uri


async def test_document_symbols_are_a_hierarchy(client: LanguageClient, ws: str) -> None:
    uri = _open(client, api_plan(ws))
    syms = await client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    assert syms is not None
    names = [s.name for s in syms]
    assert any("Achievement Index" in n for n in names)
    index = next(s for s in syms if "Achievement Index" in s.name)
    groups = index.children or []
    assert [g.name for g in groups] == ["Priority 1: FOUNDATION (HIGH)", "Priority 2: POLISH (MEDIUM)"]
    assert [c.name for c in groups[0].children or []] == ["1.1 HTTP Session Layer", "1.2 Retry Policy"]
    bodies = next(s for s in syms if s.name.endswith("Achievements"))
    assert [c.name for c in bodies.children or []][0] == "Achievement 1.1: HTTP Session Layer"


async def test_code_lenses_show_state_and_generate(client: LanguageClient, ws: str) -> None:
    uri = _open(client, api_plan(ws))
    lenses = await client.text_document_code_lens_async(
        lsp.CodeLensParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    titles = [lens.command.title for lens in lenses or [] if lens.command]
    assert "Next: 1.2 — Generate" in titles
    assert "✅ approved" in titles and "🔧 fix pending" in titles
    assert "Generate prompt" in titles


async def test_hover_and_definition(client: LanguageClient, ws: str) -> None:
    uri = _open(client, api_plan(ws))
    with open(api_plan(ws), encoding="utf-8") as f:
        lines = f.read().split("\n")
    idx = next(i for i, ln in enumerate(lines) if ln.startswith("- Achievement 1.2"))
    pos = lsp.Position(idx, lines[idx].index("Achievement") + 3)
    hov = await client.text_document_hover_async(
        lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos))
    assert hov is not None and "fix pending" in hov.contents.value and "FIX_12.md" in hov.contents.value  # type: ignore[union-attr]
    assert "Time: 2-3 hours" in hov.contents.value  # type: ignore[union-attr]
    loc = await client.text_document_definition_async(
        lsp.DefinitionParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=pos))
    assert isinstance(loc, lsp.Location)
    assert lines[loc.range.start.line].startswith("**Achievement 1.2**")


async def test_diagnostics_come_from_the_buffer_not_the_disk(client: LanguageClient, ws: str) -> None:
    with open(api_plan(ws), encoding="utf-8") as f:
        text = f.read()
    broken = text.replace("- Achievement 2.1: Typed Responses", "- Achievement 2.1: Typed Responses\n- Achievement 1.1: Again")
    uri = _open(client, api_plan(ws), text=broken)
    await asyncio.wait_for(client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 10)
    diags = client.diagnostics[uri]
    assert any(d.code == "duplicate-achievement" for d in diags)
    dup = next(d for d in diags if d.code == "duplicate-achievement")
    assert broken.split("\n")[dup.range.start.line] == "- Achievement 1.1: Again"
    # An incremental change that removes the duplicate line clears the diagnostic.
    line = dup.range.start.line
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[lsp.TextDocumentContentChangePartial(
            range=lsp.Range(lsp.Position(line, 0), lsp.Position(line + 1, 0)), text="")]))
    await asyncio.wait_for(client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 10)
    assert not any(d.code == "duplicate-achievement" for d in client.diagnostics[uri])


async def test_execute_command_returns_the_prompt(client: LanguageClient) -> None:
    res = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.generateNext", arguments=["@API-CLIENT"]))
    assert res["achievement"] == "1.2" and res["state"] == "fix_pending"
    assert "Retries ignore Retry-After" in res["prompt"]
    res = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.generate", arguments=["@DOCS-SITE", "2.2"]))
    assert res["achievement"] == "2.2" and res["state"] == "no_subplan"
    stats = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(command="perfd.stats"))
    assert stats["cache"]["entries"] > 0


async def test_bad_requests_get_errors_and_the_server_keeps_serving(client: LanguageClient, ws: str) -> None:
    with pytest.raises(Exception):
        await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="perfd.generateNext", arguments=["@NO-SUCH-PLAN"]))
    with pytest.raises(Exception):
        await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="perfd.generate", arguments=[42]))
    with pytest.raises(Exception):
        await client.text_document_document_symbol_async(
            lsp.DocumentSymbolParams(text_document=lsp.TextDocumentIdentifier(uri="untitled:nothing")))
    uri = _open(client, api_plan(ws))
    hov = await client.text_document_hover_async(
        lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(10_000, 5)))
    assert hov is None
    res = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.generateNext", arguments=["@API-CLIENT"]))
    assert res["achievement"] == "1.2"


async def test_workspace_symbols_folding_completion_links(client: LanguageClient, ws: str) -> None:
    syms = await client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="Tutorials"))
    assert [s.name for s in syms or []] == ["2.2 Tutorials"]
    uri = _open(client, api_plan(ws))
    folds = await client.text_document_folding_range_async(
        lsp.FoldingRangeParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    assert folds and len(folds) >= 5
    with open(api_plan(ws), encoding="utf-8") as f:
        lines = f.read().split("\n")
    last = len(lines) - 1
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=3),
        content_changes=[lsp.TextDocumentContentChangePartial(
            range=lsp.Range(lsp.Position(last, 0), lsp.Position(last, 0)), text="see Achievement 1.")]))
    comp = await client.text_document_completion_async(lsp.CompletionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(last, len("see Achievement 1."))))
    assert comp is not None
    labels = [i.label for i in (comp.items if isinstance(comp, lsp.CompletionList) else comp)]
    assert labels == ["1.1", "1.2"]
    sub = os.path.join(ws, "work-space", "plans", "API-CLIENT", "execution", "EXECUTION_TASK_API-CLIENT_12_01.md")
    suri = _open(client, sub)
    links = await client.text_document_document_link_async(
        lsp.DocumentLinkParams(text_document=lsp.TextDocumentIdentifier(uri=suri)))
    assert any((ln.target or "").endswith("SUBPLAN_API-CLIENT_12.md") for ln in links or [])


async def test_an_approved_file_on_disk_refreshes_lenses_and_diagnostics(client: LanguageClient, ws: str) -> None:
    refreshed = asyncio.Event()

    @client.feature(lsp.WORKSPACE_CODE_LENS_REFRESH)
    def on_refresh(*args: object) -> None:
        refreshed.set()

    plan = os.path.join(ws, "work-space", "plans", "SEARCH-INDEX", "PLAN_SEARCH-INDEX.md")
    uri = _open(client, plan)
    await asyncio.wait_for(client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 10)
    await asyncio.sleep(0.3)  # let the watcher settle on the folder
    approved = os.path.join(ws, "work-space", "plans", "SEARCH-INDEX", "execution", "feedbacks", "APPROVED_02.md")
    with open(approved, "w", encoding="utf-8") as f:
        f.write("# APPROVED: Achievement 0.2\n")
    await asyncio.wait_for(refreshed.wait(), 10)
    lenses = await client.text_document_code_lens_async(
        lsp.CodeLensParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    titles = [lens.command.title for lens in lenses or [] if lens.command]
    assert "Next: 1.1 — Generate" in titles


async def test_stats_notification_reaches_the_client(client: LanguageClient, ws: str) -> None:
    seen: asyncio.Queue[object] = asyncio.Queue()

    @client.feature("perfd/stats")
    def on_stats(*args: object) -> None:
        seen.put_nowait(args[-1])  # pygls may pass the client first; the params are last

    def field(obj: object, name: str) -> object:
        return obj[name] if isinstance(obj, dict) else getattr(obj, name)

    _open(client, api_plan(ws))
    await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="perfd.generateNext", arguments=["@API-CLIENT"]))
    await asyncio.sleep(0.3)  # past the throttle interval
    _open(client, api_plan(ws))  # a timed request: sends stats again

    async def warm_stats() -> object:
        while True:
            params = await seen.get()
            if field(field(params, "cache"), "entries") > 0:  # type: ignore[operator]
                return params

    params = await asyncio.wait_for(warm_stats(), 10)
    assert field(field(params, "cache"), "misses") > 0  # type: ignore[operator]
    latency = field(params, "latency")
    # pygls hands the client JSON objects as namedtuples: keys like "lsp/didOpen" are renamed there.
    entries = latency._asdict().values() if hasattr(latency, "_asdict") else latency.values()  # type: ignore[union-attr]
    assert any(field(e, "count") >= 1 and field(e, "p50_ms") > 0 for e in entries)  # type: ignore[operator]


async def test_problems_in_other_files_of_the_plan_are_published_for_those_files(client: LanguageClient,
                                                                                 ws: str) -> None:
    stray = os.path.join(ws, "work-space", "plans", "RELEASE-0.1", "execution", "feedbacks", "APPROVED_99.md")
    with open(stray, "w", encoding="utf-8") as f:
        f.write("# APPROVED: Achievement 9.9\n")
    try:
        plan = os.path.join(ws, "work-space", "plans", "RELEASE-0.1", "PLAN_RELEASE-0.1.md")
        _open(client, plan)
        stray_uri = "file://" + stray

        async def wait_for_stray() -> None:
            while not any(d.code == "review-not-in-index" for d in client.diagnostics.get(stray_uri, [])):
                await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

        await asyncio.wait_for(wait_for_stray(), 10)
    finally:
        os.unlink(stray)


@pytest.mark.parametrize(("offered", "rocket"), [(["utf-8", "utf-16"], 4), (None, 2), (["utf-32"], 1)])
async def test_columns_follow_the_position_encoding_the_client_offers(ws: str, offered: list[str] | None,
                                                                      rocket: int) -> None:
    # Neovim offers UTF-8 first; VS Code offers nothing (UTF-16). 🚀 is 4, 2 or 1 units.
    c = await ClientServerConfig(server_command=[sys.executable, "-m", "perfd.lsp", "--root", ws]).start()
    assert isinstance(c, LanguageClient)
    try:
        general = lsp.GeneralClientCapabilities(position_encodings=offered) if offered else None
        got = await c.initialize_session(lsp.InitializeParams(capabilities=lsp.ClientCapabilities(general=general),
                                                              root_uri="file://" + ws))
        assert got.capabilities.position_encoding == (offered[0] if offered else "utf-16")
        plan = api_plan(ws)
        with open(plan, encoding="utf-8") as f:
            text = f.read()
        line = "🚀 see FIX_12.md and Achievement 1.1"
        text += "\n" + line + "\n"
        uri = _open(c, plan, text)
        row = text.split("\n").index(line)
        links = await c.text_document_document_link_async(
            lsp.DocumentLinkParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
        fix = next(link for link in links or [] if link.range.start.line == row)
        assert (fix.range.start.character, fix.range.end.character) == (rocket + 5, rocket + 14)
        h = await c.text_document_hover_async(lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(row, len(line) - 2 + rocket)))
        assert h is not None and "**Achievement 1.1**" in h.contents.value  # type: ignore[union-attr]
    finally:
        await c.shutdown_session()  # (a client stopped without it waits for the server for good)
        await c.stop()
