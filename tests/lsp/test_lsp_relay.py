"""`perfd lsp` relayed to the daemon: two editors and the CLI share one engine and one set of stats,
and one editor's shutdown/exit ends only its own session."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator

import pytest
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")


class Box:
    def __init__(self) -> None:
        self.base = tempfile.mkdtemp(prefix="perfd-relay-")
        self.root = os.path.realpath(os.path.join(self.base, "ws"))
        shutil.copytree(EXAMPLE, self.root)
        self.env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(self.base, "r"),
                        PERFD_STATE_DIR=os.path.join(self.base, "s"))
        self.plan = os.path.join(self.root, "work-space", "plans", "API-CLIENT", "PLAN_API-CLIENT.md")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "perfd", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=30)

    async def editor(self, caps: lsp.ClientCapabilities | None = None) -> LanguageClient:
        cfg = ClientServerConfig(server_command=[sys.executable, "-m", "perfd", "lsp", "--root", self.root],
                                 server_env=self.env)
        client = await cfg.start()
        assert isinstance(client, LanguageClient)
        await client.initialize_session(lsp.InitializeParams(capabilities=caps or lsp.ClientCapabilities(),
                                                             root_uri="file://" + self.root))
        return client


@pytest.fixture
async def box() -> AsyncIterator[Box]:
    b = Box()
    yield b
    b.cli("daemon", "stop")
    shutil.rmtree(b.base, ignore_errors=True)


async def _symbols(client: LanguageClient, path: str) -> list[lsp.DocumentSymbol]:
    uri = "file://" + path
    with open(path, encoding="utf-8") as f:
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id="markdown", version=1, text=f.read())))
    syms = await client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    return list(syms or [])  # type: ignore[arg-type]


def _lsp_requests(stats: dict[str, object]) -> int:
    lat = stats.get("latency") or {}
    assert isinstance(lat, dict)
    return sum(v["count"] for k, v in lat.items() if k.startswith("lsp/"))


async def test_two_editors_share_the_daemon_and_one_exit_leaves_the_other(box: Box) -> None:
    a = await box.editor()
    b = await box.editor()
    try:
        assert await _symbols(a, box.plan)
        stats_b = await b.workspace_execute_command_async(lsp.ExecuteCommandParams(command="perfd.stats"))
        assert stats_b["sessions"] == 2
        seen_by_b = _lsp_requests(stats_b)
        assert seen_by_b >= 2  # a's didOpen and documentSymbol, counted in the shared stats
        # The CLI talks to the same daemon: its pid is the one the editors see.
        status = box.cli("daemon", "status")
        assert str(stats_b["pid"]) in status.stdout + status.stderr

        # Editor a leaves properly: shutdown, then exit. Only its session ends.
        await a.shutdown_session()
        a = None  # type: ignore[assignment]
        await asyncio.sleep(0.2)
        assert await _symbols(b, box.plan)
        stats_b2 = await b.workspace_execute_command_async(lsp.ExecuteCommandParams(command="perfd.stats"))
        assert stats_b2["sessions"] == 1 and stats_b2["pid"] == stats_b["pid"]
        res = await b.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="perfd.generateNext", arguments=["@API-CLIENT"]))
        assert res["achievement"] == "1.2"
        gen = box.cli("generate", "--next", "@API-CLIENT")
        assert gen.returncode == 0 and "Address the review of achievement 1.2" in gen.stdout
    finally:
        for c in (a, b):
            if c is not None:
                await c.shutdown_session()


async def test_a_file_created_on_disk_refreshes_the_editor_through_the_daemon(box: Box) -> None:
    c = await box.editor(lsp.ClientCapabilities(workspace=lsp.WorkspaceClientCapabilities(
        code_lens=lsp.CodeLensWorkspaceClientCapabilities(refresh_support=True))))
    try:
        refreshed = asyncio.Event()

        @c.feature(lsp.WORKSPACE_CODE_LENS_REFRESH)
        def on_refresh(*args: object) -> None:
            refreshed.set()

        plan = os.path.join(box.root, "work-space", "plans", "SEARCH-INDEX", "PLAN_SEARCH-INDEX.md")
        await _symbols(c, plan)
        await asyncio.sleep(0.3)
        with open(os.path.join(os.path.dirname(plan), "execution", "feedbacks", "APPROVED_02.md"), "w") as f:
            f.write("# APPROVED: Achievement 0.2\n")
        # Diagnostics are re-published for open documents; lenses refresh when the client supports it.
        await asyncio.wait_for(c.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 10)
        await asyncio.wait_for(refreshed.wait(), 10)
        res = await c.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="perfd.generateNext", arguments=["@SEARCH-INDEX"]))
        assert res["achievement"] == "1.1"
    finally:
        await c.shutdown_session()


async def test_standalone_flag_runs_in_process(box: Box) -> None:
    cfg = ClientServerConfig(server_command=[sys.executable, "-m", "perfd", "lsp", "--standalone", "--root", box.root],
                             server_env=box.env)
    c = await cfg.start()
    await c.initialize_session(lsp.InitializeParams(capabilities=lsp.ClientCapabilities(),
                                                    root_uri="file://" + box.root))
    try:
        stats = await c.workspace_execute_command_async(lsp.ExecuteCommandParams(command="perfd.stats"))
        # In-process: no daemon behind it (a daemon counts the editor's own connection).
        assert stats["connections"] == 0 and stats["sessions"] == 1 and "cache" in stats and "latency" in stats
        assert not os.path.exists(os.path.join(box.base, "r")) or not any(
            n.endswith(".sock") for n in os.listdir(os.path.join(box.base, "r")))
    finally:
        await c.shutdown_session()


async def test_perfd_run_through_the_relay_uses_the_daemons_shared_client(box: Box) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "llm"))
    from fakeserver import FakeServer

    with FakeServer(max_lifetime_s=60) as server:
        with open(os.path.join(box.root, "perfd.toml"), "w") as f:
            f.write(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "fake-model"\n')
        box.env = {k: v for k, v in box.env.items() if not k.startswith("PERFD_LLM_")}
        # the workspace names the stand-in model server: the user trusts it, as `perfd trust` records
        subprocess.run([sys.executable, "-m", "perfd", "trust", "--root", box.root], env=box.env, check=True,
                       capture_output=True, timeout=30)
        c = await box.editor(lsp.ClientCapabilities(window=lsp.WindowClientCapabilities(work_done_progress=True)))
        try:
            res = await c.workspace_execute_command_async(
                lsp.ExecuteCommandParams(command="perfd.run", arguments=["@DOCS-SITE", "2.1"]))
            assert res["text"].startswith("reply#") and res["cached"] is False and len(server.records) == 1
            stats = await c.workspace_execute_command_async(lsp.ExecuteCommandParams(command="perfd.stats"))
            assert stats["sessions"] == 1  # served by the daemon
        finally:
            await c.shutdown_session()
        # The editor's shutdown closed nothing shared: the CLI's run through the daemon still works,
        # and the answer the editor fetched is a cache hit for it.
        run = box.cli("run", "@DOCS-SITE", "2.1")
        assert run.returncode == 0 and run.stdout == res["text"] + ("" if res["text"].endswith("\n") else "\n")
        assert len(server.records) == 1
        run = box.cli("run", "@DOCS-SITE", "2.2", "--no-cache")
        assert run.returncode == 0 and run.stdout.startswith("reply#") and len(server.records) == 2
