"""`perfd mcp` driven by the MCP SDK's own client over stdio (mcp.client.stdio), against a real workspace:
through the workspace's daemon and in-process, tools, prompts, the CLI's errors, pages, roots and
list-changed notifications."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

mcp = pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters, types  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.shared.exceptions import McpError  # noqa: E402

from conftest import PLAN, Env, make_workspace  # noqa: E402

pytestmark = pytest.mark.slow

TOOLS = {"status", "next_step", "achievement_prompt", "achievements"}


@asynccontextmanager
async def client(env: Env, *args: str, cwd: str | None = None,
                 roots: list[str] | None = None,
                 on_message: Callable[[object], Awaitable[None]] | None = None) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "perfd", "mcp", *args],
                                   cwd=cwd or env.root, env=env.environ)
    list_roots: Any = None
    if roots is not None:
        async def list_roots(ctx: object) -> types.ListRootsResult:
            return types.ListRootsResult(roots=[types.Root(uri=f"file://{r}") for r in roots or ()])  # type: ignore[arg-type]

    async def handler(message: object) -> None:
        if on_message is not None:
            await on_message(message)

    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, list_roots_callback=list_roots, message_handler=handler) as s:
                with anyio.fail_after(60):
                    await s.initialize()
                yield s


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def add_plan(root: str, name: str) -> None:
    d = os.path.join(root, "work-space", "plans", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"PLAN_{name}.md"), "w") as f:
        f.write(PLAN.replace("Feature Work", f"Work {name}"))


async def test_tools_prompts_and_errors_through_the_daemon(env: Env) -> None:
    cli_next = env.cli("generate", "--next", "@FEAT")
    cli_json = json.loads(env.cli("generate", "--next", "--json", "@FEAT").stdout)
    assert env.pid(), "the CLI started the workspace's daemon"
    async with client(env) as s:
        tools = (await s.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        for t in tools:
            assert t.inputSchema["type"] == "object" and t.outputSchema is not None and t.description
            assert t.annotations is not None and t.annotations.readOnlyHint
        # the next step: the CLI's text, its state and write path as structured content
        got = await s.call_tool("next_step", {"plan": "FEAT"})
        assert not got.isError
        assert text(got) == cli_next.stdout
        assert got.structuredContent is not None
        assert got.structuredContent["state"] == cli_json["state"]
        assert got.structuredContent["write_path"] == cli_json["write_path"]
        assert got.structuredContent["achievement"] == cli_json["achievement"] == "1.1"
        # the only plan is the default one, as on the command line
        assert text(await s.call_tool("next_step", {})) == cli_next.stdout
        one = await s.call_tool("achievement_prompt", {"plan": "@FEAT", "achievement": "2.1"})
        assert text(one) == env.cli("generate", "@FEAT", "2.1").stdout
        status = await s.call_tool("status", {})
        assert status.structuredContent is not None
        assert [p["plan"] for p in status.structuredContent["plans"]] == ["FEAT"]
        assert status.structuredContent["next_cursor"] is None
        assert "@FEAT  0/3  next: 1.1" in text(status)
        ach = await s.call_tool("achievements", {"plan": "FEAT"})
        assert ach.structuredContent is not None
        assert [a["number"] for a in ach.structuredContent["achievements"]] == ["1.1", "1.2", "2.1"]
        # prompts: the generic one and each plan's next step
        prompts = await s.list_prompts()
        assert [p.name for p in prompts.prompts] == ["next", "next-FEAT"]
        got_prompt = await s.get_prompt("next-FEAT")
        content = got_prompt.messages[0].content
        assert isinstance(content, types.TextContent) and content.text == cli_next.stdout
        # errors: the CLI's message, as a tool error
        unknown = await s.call_tool("next_step", {"plan": "NOPE"})
        assert unknown.isError and text(unknown) == env.cli("generate", "--next", "@NOPE").stderr.strip()
        assert text(unknown).startswith("perfd: unknown plan @NOPE")
        bad = await s.call_tool("achievements", {"plan": "FEAT", "extra": 1})
        assert bad.isError and "perfd: bad arguments" in text(bad)
        with pytest.raises(McpError, match="unknown plan @NOPE"):
            await s.get_prompt("next-NOPE")
    # answered by the daemon: it counted the calls as `generate` requests
    stats = json.loads(env.cli("stats", "--json").stdout)
    generate = next(m for m in stats["methods"] if m["method"] == "generate")
    assert generate["requests"] >= 6


async def test_ambiguous_plan_in_process_starts_no_daemon(env: Env) -> None:
    add_plan(env.root, "OTHER")
    want = env.cli("--no-daemon", "generate", "--next").stderr.strip()
    assert want.startswith("perfd: which plan?")
    async with client(env, "--no-daemon") as s:
        got = await s.call_tool("next_step", {})
        assert got.isError and text(got) == want
        ok = await s.call_tool("next_step", {"plan": "OTHER"})
        assert text(ok) == env.cli("--no-daemon", "generate", "--next", "@OTHER").stdout
    assert not env.pid() and not env.daemon_pids()


async def test_no_workspace_is_the_clis_error(env: Env) -> None:
    outside = os.path.join(env.base, "elsewhere")
    os.makedirs(outside)
    want = env.cli("--no-daemon", "status", cwd=outside).stderr.strip()
    assert want.startswith("perfd: no PLAN workspace")
    async with client(env, cwd=outside) as s:
        got = await s.call_tool("status", {})
        assert got.isError and text(got) == want
        assert [p.name for p in (await s.list_prompts()).prompts] == ["next"]


async def test_the_clients_roots_name_the_workspace(env: Env) -> None:
    outside = os.path.join(env.base, "elsewhere")
    os.makedirs(outside)
    roots = [outside, env.root]
    async with client(env, "--no-daemon", cwd=outside, roots=roots) as s:
        got = await s.call_tool("next_step", {"plan": "FEAT"})
        assert not got.isError and text(got) == env.cli("generate", "--next", "@FEAT").stdout
        # the client's roots change: the next answer comes from the workspace they name now
        other = make_workspace(os.path.join(env.base, "second"), name="SECOND")
        roots[:] = [other]
        await s.send_roots_list_changed()
        got = await s.call_tool("status", {})
        assert got.structuredContent is not None and got.structuredContent["root"] == other


async def test_bad_root_option_is_the_clis_error(env: Env) -> None:
    want = env.cli("--root", "/nonexistent-perfd", "status").stderr.strip()
    async with client(env, "--root", "/nonexistent-perfd") as s:
        got = await s.call_tool("status", {})
        assert got.isError and text(got) == want


async def test_long_lists_come_in_pages(env: Env) -> None:
    for i in range(1, 1500):
        add_plan(env.root, f"P{i:04d}")
    async with client(env, "--no-daemon") as s:
        names: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await s.list_prompts(cursor)
            names += [p.name for p in page.prompts]
            pages += 1
            cursor = page.nextCursor
            if cursor is None:
                break
        assert pages == 8 and len(names) == 1 + 1500 and len(set(names)) == len(names)
        plans: list[str] = []
        args: dict[str, Any] = {}
        while True:
            got = await s.call_tool("status", args)
            assert got.structuredContent is not None and got.structuredContent["total"] == 1500
            plans += [p["plan"] for p in got.structuredContent["plans"]]
            if got.structuredContent["next_cursor"] is None:
                break
            args = {"cursor": got.structuredContent["next_cursor"]}
        assert len(plans) == 1500 == len(set(plans))
        bad = await s.call_tool("status", {"cursor": "x"})
        assert bad.isError


@pytest.mark.parametrize("daemon", [True, False], ids=["daemon", "in-process"])
async def test_a_new_plan_changes_the_prompts_list(env: Env, daemon: bool) -> None:
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ServerNotification) and \
                isinstance(message.root, types.PromptListChangedNotification):
            changed.set()

    args = () if daemon else ("--no-daemon",)
    async with client(env, *args, on_message=on_message) as s:
        assert [p.name for p in (await s.list_prompts()).prompts] == ["next", "next-FEAT"]
        assert env.pid() if daemon else not env.pid()
        add_plan(env.root, "LATER")
        with anyio.fail_after(30):
            await changed.wait()
        assert [p.name for p in (await s.list_prompts()).prompts] == ["next", "next-FEAT", "next-LATER"]


# --- the SDK stays out of the daemon and the thin client ------------------------------------------

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "daemon", "perfd")


def _imports(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _module_files() -> dict[str, str]:
    files = {}
    for folder, _, names in os.walk(PKG):
        for n in names:
            if n.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, n), os.path.dirname(PKG))[:-3].replace(os.sep, ".")
                files[rel.removesuffix(".__init__")] = os.path.join(folder, n)
    return files


def test_only_the_adapter_imports_the_sdk_and_the_daemon_never_reaches_it() -> None:
    files = _module_files()
    importers = {m for m, p in files.items() if any(i == "mcp" or i.startswith("mcp.") for i in _imports(p))}
    assert importers == {"perfd.agent.mcp_server"}
    # every perfd module the daemon can import, at any depth, inside functions too
    seen: set[str] = set()
    todo = ["perfd.daemon.server", "perfd.daemon.methods", "perfd.daemon.connections"]
    while todo:
        m = todo.pop()
        if m in seen or m not in files:
            continue
        seen.add(m)
        todo += [i for i in _imports(files[m]) if i.startswith("perfd")]
    assert seen and not any(m.startswith("perfd.agent") for m in seen), sorted(m for m in seen if "agent" in m)


def test_the_thin_client_never_imports_the_sdk(env: Env) -> None:
    code = ("import sys; from perfd.cli.client import main; code = main(['status']); "
            "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith(('mcp.', 'pydantic', 'perfd.agent'))))")
    got = subprocess.run([sys.executable, "-c", code], cwd=env.root, env=env.environ, capture_output=True,
                         text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip().splitlines()[-1] == "[]"
