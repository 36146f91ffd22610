"""`perfd mcp`: perfd's tools and prompts for coding agents, over stdio, on the MCP Python SDK.

The one module that imports the SDK (`mcp`, the optional extra perfd[mcp]); the
daemon and the thin client never do. Handlers go into the low-level server's
`request_handlers` table typed (its decorators are untyped): one handler per MCP
method, each a few lines over perfd.agent.tools (what is offered) and
perfd.agent.answers (who answers: the workspace's daemon, else this process).

The workspace is the one given (--root), else the one around the folder it
starts in, else the first of the client's MCP roots that holds one. When plans
change (the daemon's planChanged notifications, or a poll without a daemon)
and the client has listed the prompts, it is told that the list changed.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit
from urllib.request import url2pathname

import anyio
import msgspec
from mcp import types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import McpError

from perfd import __version__
from perfd.agent import tools as T
from perfd.agent.answers import Answer, Answerer, Forward, find_root
from perfd.engine.types import WorkspaceStatus
from perfd.paths import find_workspace_root

log = logging.getLogger("perfd.mcp")

POLL_S = 2.0  # without a daemon to tell us, how often the plans are looked at (once the client listed them)
BACKSTOP_S = 10.0  # with one, how often anyway (a plan created may move no plan the daemon knows)
INSTRUCTIONS = ("perfd knows the markdown PLAN workspace's plans: what is next, and the prompt for it. "
                "Call next_step for the prompt of a plan's next step and follow it; status lists every plan.")
_BY_NAME = {t.name: t for t in T.TOOLS}


def _error(message: str) -> types.ServerResult:
    return types.ServerResult(types.CallToolResult(content=[types.TextContent(type="text", text=message)],
                                                   isError=True))


class McpService:
    """One client's server: where its answers come from, and what it was last shown of the prompts."""

    def __init__(self, root_option: str | None, cwd: str, forward: Forward | None) -> None:
        root, self.bad_root = find_root(root_option, cwd)
        self.cwd = cwd
        self.forward = forward
        self.answerer = Answerer(root, cwd, forward)
        # The client's roots are asked only when neither --root nor the starting folder names a workspace
        # (and again when the client says its roots changed).
        self.by_roots = root is None and root_option is None
        self.ask_roots = self.by_roots
        self.session: ServerSession | None = None
        self.listed: tuple[tuple[str, str | None, str, int], ...] | None = None  # the prompts the client saw
        self.server: Server[object, object] = Server("perfd", version=__version__, instructions=INSTRUCTIONS)
        h = self.server.request_handlers
        h[types.ListToolsRequest] = self.list_tools
        h[types.CallToolRequest] = self.call_tool
        h[types.ListPromptsRequest] = self.list_prompts
        h[types.GetPromptRequest] = self.get_prompt
        self.server.notification_handlers[types.RootsListChangedNotification] = self.roots_changed

    # -- answers ---------------------------------------------------------------------------------

    def _seen(self) -> None:
        """Keep the session of the request being served: list-changed notifications go to it."""
        self.session = self.server.request_context.session

    async def ask(self, argv: list[str]) -> Answer:
        if self.bad_root is not None:
            return self.bad_root
        if self.ask_roots:
            await self._root_from_client()
        return await anyio.to_thread.run_sync(self.answerer.answer, argv)

    async def _root_from_client(self) -> None:
        session = self.session
        if session is None or not session.check_client_capability(types.ClientCapabilities(roots=types.RootsCapability())):
            return
        self.ask_roots = False
        try:
            with anyio.fail_after(5):
                got = await session.list_roots()
        except (McpError, TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            log.warning("the client's roots could not be listed: %s", exc)
            return
        for r in got.roots:
            url = urlsplit(str(r.uri))
            if url.scheme != "file":
                continue
            found = find_workspace_root(url2pathname(url.path))
            if found:
                real = os.path.realpath(found)
                self.answerer = Answerer(real, real, self.forward)
                return

    async def roots_changed(self, _: types.RootsListChangedNotification) -> None:
        if not self.by_roots:
            return  # the workspace came from --root or the starting folder: the client's roots do not move it
        self.ask_roots = True
        self.answerer = Answerer(None, self.cwd, self.forward)

    # -- tools -----------------------------------------------------------------------------------

    async def list_tools(self, req: types.ListToolsRequest) -> types.ServerResult:
        self._seen()
        read_only = types.ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)
        return types.ServerResult(types.ListToolsResult(tools=[
            types.Tool(name=t.name, title=t.title, description=t.description, inputSchema=T.object_schema(t.args),
                       outputSchema=T.object_schema(t.result), annotations=read_only)
            for t in T.TOOLS]))

    async def call_tool(self, req: types.CallToolRequest) -> types.ServerResult:
        self._seen()
        tool = _BY_NAME.get(req.params.name)
        if tool is None:
            return _error(f"perfd: no tool named {req.params.name!r} (tools: {', '.join(_BY_NAME)})")
        try:
            args = T.decode_args(tool.args, req.params.arguments)
            if isinstance(args, T.StatusArgs):
                T.offset_of(args.cursor)
            answer = await self.ask(T.argv_for(args))
            if answer.code != 0:
                return _error(answer.message)
            result = T.result_of(args, answer.stdout)
        except T.BadArguments as exc:
            return _error(str(exc))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:  # a daemon of another make: one line
            return _error(f"perfd: unexpected answer: {exc}")
        return types.ServerResult(types.CallToolResult(
            content=[types.TextContent(type="text", text=result.text)],
            structuredContent=T.to_builtins(result.structured), isError=False))

    # -- prompts: each plan's next step --------------------------------------------------------

    async def _status(self) -> WorkspaceStatus | None:
        answer = await self.ask(["status", "--json"])
        if answer.code != 0:
            return None
        try:
            return msgspec.json.decode(answer.stdout, type=WorkspaceStatus)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    async def list_prompts(self, req: types.ListPromptsRequest) -> types.ServerResult:
        self._seen()
        cursor = req.params.cursor if req.params is not None else None
        try:
            start = T.offset_of(cursor)
        except T.BadArguments as exc:
            raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=str(exc))) from None
        prompts: list[types.Prompt] = []
        if start == 0:
            prompts.append(types.Prompt(
                name="next", title="perfd: next step",
                description="The prompt for a plan's next step (perfd generate --next)",
                arguments=[types.PromptArgument(name="plan", required=False,
                                                description="the plan's name; omitted, the workspace's default")]))
        ws = await self._status()
        if ws is None:
            return types.ServerResult(types.ListPromptsResult(prompts=prompts))
        if start == 0:
            self.listed = T.prompts_key(ws)
        end, next_cursor = T.page(len(ws.plans), start)
        prompts += [types.Prompt(name=T.prompt_name(p.plan), title=f"Next step of @{p.plan}",
                                 description=T.prompt_description(p)) for p in ws.plans[start:end]]
        return types.ServerResult(types.ListPromptsResult(prompts=prompts, nextCursor=next_cursor))

    async def get_prompt(self, req: types.GetPromptRequest) -> types.ServerResult:
        self._seen()
        name = req.params.name
        plan = (req.params.arguments or {}).get("plan") if name == "next" else T.plan_of_prompt(name)
        if plan is None and name != "next":
            raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=f"perfd: no prompt named {name!r}"))
        args = T.NextStepArgs(plan=plan or None)
        answer = await self.ask(T.argv_for(args))
        if answer.code != 0:
            raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=answer.message))
        g = T.result_of(args, answer.stdout)
        step = g.structured
        what = f"achievement {step.achievement}" if isinstance(step, T.Step) and step.achievement else "next step"
        plan_name = step.plan if isinstance(step, T.Step) else ""
        return types.ServerResult(types.GetPromptResult(
            description=f"@{plan_name}: {what}",
            messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=g.text))]))

    # -- telling the client when the plans change ---------------------------------------------

    async def check(self) -> None:
        """Tell the client the prompts list changed, when what it was shown did."""
        session = self.session
        if session is None or self.listed is None:
            return
        ws = await self._status()
        if ws is None:
            return
        key = T.prompts_key(ws)
        if key != self.listed:
            self.listed = key
            try:
                await session.send_prompt_list_changed()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    def _daemon_socket(self) -> str | None:
        root = self.answerer.root
        if root is None or not self.answerer.use_daemon:
            return None
        from perfd.wire.rendezvous import state_paths

        try:
            sock = state_paths(root).sock
        except OSError:
            return None
        return sock if os.path.exists(sock) else None

    async def _follow_daemon(self, sock: str) -> None:
        """Subscribe to the daemon's planChanged notifications and check on each burst (until it goes)."""
        from perfd.wire.ipc import FrameDecoder, frame
        from perfd.wire.rendezvous import request_body

        root = self.answerer.root
        async with await anyio.connect_unix(sock) as stream:
            await stream.send(frame(request_body("subscribe")))
            dec = FrameDecoder()
            while self.answerer.root == root:
                changed = False
                with anyio.move_on_after(BACKSTOP_S):
                    changed = any(b'"planChanged"' in body for body in dec.feed(await stream.receive()))
                    if not changed:
                        continue
                    await anyio.sleep(0.05)  # a save touches several files: one check for the burst
                await self.check()

    async def watch(self) -> None:
        while True:
            sock = self._daemon_socket()
            if sock is not None:
                try:
                    await self._follow_daemon(sock)
                except (OSError, anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # the daemon went (idle, replaced): poll until one is back
            await anyio.sleep(POLL_S)
            await self.check()

    async def serve(self) -> None:
        options = self.server.create_initialization_options(NotificationOptions(prompts_changed=True))
        async with stdio_server() as (read, write):
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.watch)
                await self.server.run(read, write, options)
                tg.cancel_scope.cancel()


def serve(root_option: str | None, cwd: str, forward: Forward | None) -> None:
    """Serve one client on stdio until it closes; `forward` reaches the workspace's daemon (None: never)."""
    anyio.run(McpService(root_option, cwd, forward).serve)
