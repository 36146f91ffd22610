"""`perfd mcp` benchmark, measured at the MCP client (the SDK's own, over stdio), on a copy of the example
workspace: start-up to the first answer (spawn, initialize, one next_step), and the median of warm tool
calls, through the workspace's (warm) daemon and in-process (--no-daemon), beside a ping (the SDK's own
round trip, the floor under every call).

Run: python tests/bench/bench_mcp.py [--calls N] [--starts N]

Goal (issue 25): a warm tool call within 5 ms on the daemon path.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")

import anyio  # noqa: E402
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

GOAL_MS = 5.0
PLAN = "API-CLIENT"


def environ(base: str) -> dict[str, str]:
    env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(base, "r"), PERFD_STATE_DIR=os.path.join(base, "s"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.join(REPO, "daemon"), env.get("PYTHONPATH")) if p)
    return env


def params(root: str, env: dict[str, str], daemon: bool) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "perfd", "mcp"] + ([] if daemon else ["--no-daemon"]),
                                 cwd=root, env=env)


async def median_ms(call: Callable[[], Awaitable[object]], n: int) -> float:
    for _ in range(5):
        await call()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


async def start_to_first_answer(root: str, env: dict[str, str], daemon: bool) -> float:
    t = time.perf_counter()
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params(root, env, daemon), errlog=errlog) as (r, w):
            async with ClientSession(r, w) as s:
                await s.initialize()
                got = await s.call_tool("next_step", {"plan": PLAN})
                took = (time.perf_counter() - t) * 1000
                assert not got.isError, got
    return took


async def warm_calls(root: str, env: dict[str, str], daemon: bool, n: int) -> dict[str, float]:
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params(root, env, daemon), errlog=errlog) as (r, w):
            async with ClientSession(r, w) as s:
                await s.initialize()
                await s.list_tools()
                return {
                    "ping (the SDK's round trip)": await median_ms(s.send_ping, n),
                    "next_step": await median_ms(lambda: s.call_tool("next_step", {"plan": PLAN}), n),
                    "achievement_prompt": await median_ms(
                        lambda: s.call_tool("achievement_prompt", {"plan": PLAN, "achievement": "2.1"}), n),
                    "achievements": await median_ms(lambda: s.call_tool("achievements", {"plan": PLAN}), n),
                    "status": await median_ms(lambda: s.call_tool("status", {}), n),
                    "get_prompt": await median_ms(lambda: s.get_prompt(f"next-{PLAN}"), n),
                }


async def run(calls: int, starts: int) -> int:
    base = tempfile.mkdtemp(prefix="pdmcp", dir="/tmp")
    root = os.path.join(base, "ws")
    shutil.copytree(EXAMPLE, root)
    env = environ(base)
    try:
        subprocess.run([sys.executable, "-m", "perfd", "status"], cwd=root, env=env, capture_output=True, check=True)
        starts_d = [await start_to_first_answer(root, env, True) for _ in range(starts)]
        starts_p = [await start_to_first_answer(root, env, False) for _ in range(starts)]
        warm_d = await warm_calls(root, env, True, calls)
        warm_p = await warm_calls(root, env, False, calls)
    finally:
        subprocess.run([sys.executable, "-m", "perfd", "daemon", "stop"], cwd=root, env=env, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
    print(f"perfd mcp benchmark, at the MCP client over stdio ({calls} warm calls each, median; "
          f"{starts} start-ups, median)")
    print()
    print(f"{'start-up to first answer (spawn, initialize, next_step)':58} {'daemon':>9} {'in-process':>11}")
    print(f"{'':58} {statistics.median(starts_d):8.1f}ms {statistics.median(starts_p):9.1f}ms")
    print()
    hdr = f"{'warm call':30} {'daemon ms':>10} {'in-proc ms':>11} {'daemon/goal':>12}"
    print(hdr)
    print("-" * len(hdr))
    missed = 0
    for name in warm_d:
        d, p = warm_d[name], warm_p[name]
        tool = not name.startswith("ping")
        verdict = "" if not tool else ("ok" if d <= GOAL_MS else "MISSED")
        missed += verdict == "MISSED"
        ratio = f"{d / GOAL_MS:11.2f}x" if tool else ""
        print(f"{name:30} {d:10.3f} {p:11.3f} {ratio:>12}  {verdict}")
    print()
    print(f"goal: a warm tool call within {GOAL_MS:.0f} ms on the daemon path; goals missed: {missed}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    return anyio.run(run, args.calls, args.starts)


if __name__ == "__main__":
    sys.exit(main())
