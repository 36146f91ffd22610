"""The daemon side of the editor's live figures, at several workspace sizes, side by side.

    python tests/bench/bench_editor.py [--rounds 5]

For each size (plans of 12 achievements each), one editor session through the
daemon (`python -m perfd lsp --root WS`, the relay the extension starts):
- an APPROVED file written on disk -> the session's perfd/plansChanged
  notification, and -> the answers the Plans view asks for then (perfd.status of
  the workspace and of the one expanded plan): the server's part of the
  "plan change reflected in the view" goal (300 ms);
- perfd.run streamed from the stand-in model server (tests/llm/fakeserver.py,
  on 127.0.0.1): its first chunk sent -> the first perfd/runChunk at the
  client: the server's part of the "first token visible" goal (100 ms).
What VS Code adds on top (drawing the view, applying the edit) is measured
inside VS Code by the e2e test (`npm run e2e` in editor-client/), which prints
the whole figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "llm"))
sys.path.insert(0, HERE)
from fakeserver import FakeServer  # noqa: E402
from synthetic import plan_text, write_workspace  # noqa: E402

SIZES = (4, 40, 200)


def workspace(root: str, plans: int, base_url: str) -> list[str]:
    paths = [write_workspace(root, f"P{i:03d}", plan_text(12, body_lines=6, seed=i)) for i in range(plans)]
    with open(os.path.join(root, "perfd.toml"), "w", encoding="utf-8") as f:
        f.write(f'[llm]\nbase_url = "{base_url}"\nmodel = "fake-model"\n')
    return paths


async def one_size(plans: int, rounds: int, server: FakeServer, env: dict[str, str]) -> dict[str, list[float]]:
    base = tempfile.mkdtemp(prefix="perfd-bench-editor-")
    root = os.path.join(base, "ws")
    paths = workspace(root, plans, server.base_url)
    out: dict[str, list[float]] = {"notify": [], "view": [], "chunk": []}
    env = {**env, "PERFD_STATE_DIR": os.path.join(base, "state")}  # its own response cache: every run is sent
    client = await ClientServerConfig(server_command=[sys.executable, "-m", "perfd", "lsp", "--root", root],
                                      server_env=env).start()
    assert isinstance(client, LanguageClient)
    seen: dict[str, list[tuple[float, Any]]] = {"perfd/plansChanged": [], "perfd/runChunk": []}
    for method in seen:
        @client.feature(method)
        def _note(params: Any, method: str = method) -> None:
            seen[method].append((time.perf_counter(), params))
    try:
        await client.initialize_session(lsp.InitializeParams(capabilities=lsp.ClientCapabilities(),
                                                             root_uri="file://" + root))
        status = lsp.ExecuteCommandParams(command="perfd.status", arguments=[])
        await client.workspace_execute_command_async(status)  # warm
        await asyncio.sleep(0.5)  # the daemon's watcher is up
        for i in range(rounds):
            feedbacks = os.path.join(os.path.dirname(paths[i % len(paths)]), "execution", "feedbacks")
            seen["perfd/plansChanged"].clear()
            t0 = time.perf_counter()
            with open(os.path.join(feedbacks, f"APPROVED_0{i // len(paths) + 1}.md"), "w") as f:
                f.write("# APPROVED\n")
            while not seen["perfd/plansChanged"]:
                await asyncio.sleep(0.001)
            out["notify"].append((seen["perfd/plansChanged"][0][0] - t0) * 1000)
            await client.workspace_execute_command_async(status)
            await client.workspace_execute_command_async(
                lsp.ExecuteCommandParams(command="perfd.status", arguments=[paths[i % len(paths)]]))
            out["view"].append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.3)  # let the watcher's batch settle before the next file
        for i in range(rounds):
            seen["perfd/runChunk"].clear()
            wall_before = time.time()
            await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
                command="perfd.run", arguments=[paths[(i + 1) % len(paths)], f"0.{i + 2}", {"stream": f"b{i}"}]))
            rec = [r for r in server.records if r.first_chunk_wall and r.first_chunk_wall >= wall_before][-1]
            first = seen["perfd/runChunk"][0][0]
            # perf_counter -> wall: the offset measured now is good to well under a millisecond
            offset = time.time() - time.perf_counter()
            out["chunk"].append((first + offset - rec.first_chunk_wall) * 1000)
    finally:
        await client.shutdown_session()
        await client.stop()
        subprocess.run([sys.executable, "-m", "perfd", "daemon", "stop", "--root", root], env=env,
                       capture_output=True, timeout=30)
        shutil.rmtree(base, ignore_errors=True)
    return out


def cell(xs: list[float]) -> str:
    return f"{statistics.median(xs):7.1f} / {max(xs):6.1f}"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFD_LLM")}
    with FakeServer(max_lifetime_s=600) as server:
        server.settings.chunks, server.settings.stream_delay_s = 20, 0.02
        rows = [(n, await one_size(n, args.rounds, server, env)) for n in SIZES]
    print("ms, median / max over", args.rounds, "rounds; through the daemon, as the extension runs it")
    print(f"{'plans':>6}  {'file -> plansChanged':>20}  {'file -> view answers':>20}  {'chunk sent -> runChunk':>22}")
    for n, r in rows:
        print(f"{n:>6}  {cell(r['notify']):>20}  {cell(r['view']):>20}  {cell(r['chunk']):>22}")
    print("goals inside VS Code (the e2e prints them): plan change to view <= 300 ms, first token <= 100 ms")


if __name__ == "__main__":
    asyncio.run(main())
