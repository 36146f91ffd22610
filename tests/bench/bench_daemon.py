"""Benchmark the daemon path against the interpreter's floor and the in-process path, side by side.

    python tests/bench/bench_daemon.py [--runs 11]

Prints a table; a goal not met says MISSED. Uses a copy of
../shared/fixtures/context-manager (a synthetic workspace when absent), and
private runtime/state folders, and stops its daemon at the end.
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURE = os.path.join(REPO, "..", "shared", "fixtures", "context-manager")
sys.path.insert(0, os.path.join(REPO, "daemon"))
sys.path.insert(0, os.path.join(REPO, "tests", "daemon"))


def wall(argv: list[str], env: dict[str, str], cwd: str) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode != 0 or b"working in-process" in r.stderr:
        raise SystemExit(f"{argv} failed ({r.returncode}): {r.stderr.decode()[:500]}")
    return dt


def side_by_side(cmds: dict[str, list[str]], env: dict[str, str], cwd: str, runs: int) -> dict[str, list[float]]:
    """Interleave the commands run by run so drift hits them all alike."""
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for k, argv in cmds.items():  # warm the page cache
        wall(argv, env, cwd)
    for _ in range(runs):
        for k, argv in cmds.items():
            times[k].append(wall(argv, env, cwd))
    return times


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    opts = ap.parse_args()
    base = tempfile.mkdtemp(prefix="pdb", dir="/tmp")
    if os.path.isdir(FIXTURE):
        root = os.path.join(base, "ws")
        shutil.copytree(FIXTURE, root, symlinks=True)
        source = "fixture context-manager (copied)"
    else:
        from conftest import make_workspace

        root = make_workspace(base)
        source = "synthetic workspace (fixture absent)"
    root = os.path.realpath(root)
    env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(base, "r"), PERFD_STATE_DIR=os.path.join(base, "s"),
               PYTHONPYCACHEPREFIX=os.path.join(base, "pyc"))
    # Measure with bytecode caches, as an installed perfd has them (this machine sets
    # PYTHONDONTWRITEBYTECODE=1, which makes every process compile perfd.cli.client from source).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.update(PERFD_RUNTIME_DIR=env["PERFD_RUNTIME_DIR"], PERFD_STATE_DIR=env["PERFD_STATE_DIR"])
    from perfd.cli import daemon_ctl
    from perfd.wire.rendezvous import Connection, state_paths
    from perfd.engine.engine import Engine

    plans = Engine(root).workspace.plans()
    largest = max(plans, key=lambda p: os.path.getsize(p.path))
    plan = "@" + largest.name
    with open(largest.path, "rb") as f:
        lines = f.read().count(b"\n")
    py = sys.executable
    script = os.path.join(os.path.dirname(py), "perfd")
    gen = ["generate", "--next", plan]
    rows: list[tuple[str, str, str, str]] = []
    try:
        # cold start to first answer (auto-start included)
        colds = []
        for _ in range(5):
            daemon_ctl.stop(root)
            colds.append(wall([py, "-m", "perfd", *gen], env, root))
        cold = statistics.median(colds)
        cmds = {
            "python -c pass": [py, "-c", "pass"],
            "perfd (console script)": [script, *gen],
            "python -m perfd": [py, "-m", "perfd", *gen],
            "direct: python -c 'from perfd.cli.client import main'": [
                py, "-c", "import sys; from perfd.cli.client import main; sys.exit(main())", *gen],
            "--no-daemon (in-process)": [py, "-m", "perfd", "--no-daemon", *gen],
        }
        t = side_by_side(cmds, env, root, opts.runs)
        floor = statistics.median(t["python -c pass"])
        nod = statistics.median(t["--no-daemon (in-process)"])
        for k in cmds:
            m = statistics.median(t[k])
            ratio = m / floor
            goal, verdict = "", ""
            if k in ("perfd (console script)", "python -m perfd", "direct: python -c 'from perfd.cli.client import main'"):
                goal = "<= 1.6x python -c pass; < --no-daemon"
                verdict = "met" if ratio <= 1.6 and m < nod else ("MISSED (ratio)" if ratio > 1.6 else "MISSED")
            rows.append((f"warm {k}", f"{m * 1000:.1f} ms ({ratio:.2f}x; {m / nod:.2f}x of --no-daemon)", goal,
                         verdict))
        # the same, as this machine runs it by default: PYTHONDONTWRITEBYTECODE=1, no .pyc for perfd
        env_nopyc = dict(env, PYTHONDONTWRITEBYTECODE="1")
        env_nopyc.pop("PYTHONPYCACHEPREFIX")
        t2 = side_by_side({"pass": [py, "-c", "pass"], "script": [script, *gen]}, env_nopyc, root, opts.runs)
        r2 = statistics.median(t2["script"]) / statistics.median(t2["pass"])
        rows.append(("warm perfd (console script), PYTHONDONTWRITEBYTECODE=1",
                     f"{statistics.median(t2['script']) * 1000:.1f} ms ({r2:.2f}x)", "<= 1.6x",
                     "met" if r2 <= 1.6 else "MISSED (no bytecode cache: perfd.cli.client compiled each run)"))
        # daemon-side latency
        with Connection(state_paths(root).sock) as c:
            for _ in range(3000):
                c.call("generate", {"plan": plan})
            for p in plans:
                c.call("generate", {"plan": "@" + p.name})
            c.call("status")
            st = c.call("stats")["result"]
        g = next(m for m in st["methods"] if m["method"] == "generate")["latency"]
        rows.append(("daemon-side generate p50", f"{g['p50_ms']:.3f} ms", "<= 0.2 ms",
                     "met" if g["p50_ms"] <= 0.2 else "MISSED"))
        rows.append(("daemon-side generate p99", f"{g['p99_ms']:.3f} ms", "", ""))
        # (a command line is counted under its command: the `generate` row above holds those too)
        rows.append(("cold start to first answer (median of 5)", f"{cold * 1000:.0f} ms", "<= 500 ms",
                     "met" if cold <= 0.5 else "MISSED"))
        rss = st["rss_bytes"] / 1048576
        rows.append((f"daemon RSS, {len(plans)} plans loaded", f"{rss:.1f} MiB", "<= 60 MB",
                     "met" if rss * 1.048576 <= 60 else "MISSED"))
        # file touch -> subscriber event
        from perfd.wire.rendezvous import Connection

        lat = []
        scratch = os.path.join(largest.folder, "bench-touch.md")
        with Connection(state_paths(root).sock, timeout=5) as c:
            c.call("subscribe")
            time.sleep(0.3)
            for i in range(20):
                t0 = time.perf_counter()
                with open(scratch, "w") as f:
                    f.write(f"touch {i}\n")
                while True:
                    msg = c.recv()
                    if msg.get("method") == "planChanged":
                        break
                lat.append(time.perf_counter() - t0)
                time.sleep(0.06)  # let the debounce window close
        ev = statistics.median(lat) * 1000
        rows.append(("touch -> subscriber event p50 (20 runs)", f"{ev:.1f} ms (p95 {pct(lat, 0.95) * 1000:.1f})",
                     "<= 100 ms", "met" if ev <= 100 else "MISSED"))
    finally:
        daemon_ctl.stop(root)
        shutil.rmtree(base, ignore_errors=True)
    print(f"perfd daemon benchmark · {source} · largest plan {plan} ({lines} lines) · {opts.runs} runs, medians,"
          f" python {sys.version.split()[0]}, {os.cpu_count()} cores")
    w = [max(len(r[i]) for r in rows + [("measure", "result", "goal", "verdict")]) for i in range(4)]
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(("measure", "result", "goal", "verdict"))))
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
