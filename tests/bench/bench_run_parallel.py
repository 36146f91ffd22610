"""`perfd run --parallel` against one achievement's run, side by side, against a stand-in model server.

    python tests/bench/bench_run_parallel.py [--rounds 5] [--latency 0.2] [--sizes 3,6,12]

The stand-in (tests/llm/fakeserver.py, in its own process) answers every call
after `--latency` seconds. A synthetic plan has N achievements ready at once
(level 2 of its parallel.json). Each round runs, as whole processes and in
turn, `perfd --no-daemon run @WIDE 2.1 --no-cache` (one call) and `perfd
--no-daemon run @WIDE --parallel --no-cache --concurrency N` (N calls at once),
and the figure is the median of the rounds' ratios parallel / single. Goal
(the issue's): at most 1.2x at N = 3, since the calls run at once. Larger N
shows how the cost grows with the work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_llm import Server  # noqa: E402

GOAL = 1.2


def write_plan(root: str, n: int) -> None:
    """A plan WIDE: 1.1 approved, then 2.1 .. 2.N all depending only on 1.1."""
    folder = os.path.join(root, "work-space", "plans", "WIDE")
    os.makedirs(os.path.join(folder, "execution", "feedbacks"))
    os.makedirs(os.path.join(folder, "subplans"))
    numbers = [f"2.{i}" for i in range(1, n + 1)]
    index = "\n".join(f"- Achievement {x}: Part {x}" for x in numbers)
    bodies = "\n".join(f"**Achievement {x}**: Part {x}\n\n**Goal**: part {x}.\n\n---\n" for x in ["1.1", *numbers])
    with open(os.path.join(folder, "PLAN_WIDE.md"), "w") as f:
        f.write(f"# PLAN: Wide\n\n**Status**: In Progress\n\n---\n\n## 📋 Achievement Index\n\n"
                f"- Achievement 1.1: Base\n{index}\n\n---\n\n## 📋 Achievements\n\n{bodies}")
    with open(os.path.join(folder, "subplans", "SUBPLAN_WIDE_11.md"), "w") as f:
        f.write("# SUBPLAN: Base\n\n**Status**: ✅ Complete\n")
    with open(os.path.join(folder, "execution", "feedbacks", "APPROVED_11.md"), "w") as f:
        f.write("# APPROVED: Achievement 1.1\n")
    graph = {"plan_name": "WIDE", "achievements": [{"achievement_id": "1.1", "title": "Base", "dependencies": []}]
             + [{"achievement_id": x, "title": f"Part {x}", "dependencies": ["1.1"]} for x in numbers]}
    with open(os.path.join(folder, "parallel.json"), "w") as f:
        json.dump(graph, f)


def timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, str, str]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{argv} exited {p.returncode}: {p.stderr}")
    return wall, p.stdout, p.stderr


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--sizes", default="3,6,12")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    server = Server()
    rows = []
    try:
        server.reset(latency_s=args.latency)
        for n in sizes:
            with tempfile.TemporaryDirectory(prefix="perfd-bench-run-") as tmp:
                root = os.path.join(tmp, "ws")
                write_plan(root, n)
                env = {**os.environ, "PERFD_LLM_BASE_URL": server.base_url, "PERFD_LLM_MODEL": "fake-model",
                       "PERFD_LLM_RPM": "100000", "PERFD_STATE_DIR": os.path.join(tmp, "state"),
                       "PERFD_RUNTIME_DIR": os.path.join(tmp, "run")}
                base = [sys.executable, "-m", "perfd", "--no-daemon", "--root", root, "run", "@WIDE"]
                single = [*base, "2.1", "--no-cache"]
                wide = [*base, "--parallel", "--no-cache", "--concurrency", str(n)]
                timed(single, env, root)  # warm-up: bytecode, the cache and history files
                ratios, singles, wides = [], [], []
                for _ in range(args.rounds):
                    a, _o, _e = timed(single, env, root)
                    b, out, err = timed(wide, env, root)
                    assert out.count("==> @WIDE ") == n, (out, err)  # every answer printed
                    singles.append(a)
                    wides.append(b)
                    ratios.append(b / a)
                rows.append((n, statistics.median(singles), statistics.median(wides), statistics.median(ratios),
                             min(ratios), max(ratios)))
    finally:
        server.close()
    print(f"perfd run --parallel vs one achievement, stand-in server latency {args.latency * 1000:.0f} ms, "
          f"{args.rounds} rounds, whole processes (--no-daemon), medians")
    print(f"{'ready':>5} {'single s':>9} {'parallel s':>11} {'ratio':>7} {'min':>6} {'max':>6}  goal")
    for n, a, b, r, lo, hi in rows:
        goal = (f"<= {GOAL}x: " + ("met" if r <= GOAL else "MISSED")) if n == 3 else "(growth)"
        print(f"{n:>5} {a:>9.3f} {b:>11.3f} {r:>6.2f}x {lo:>5.2f}x {hi:>5.2f}x  {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
