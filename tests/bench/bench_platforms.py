"""A CLI call on a system whose kernel has no SO_PEERCRED (macOS, simulated here), this tree against another.

    python tests/bench/bench_platforms.py [--rounds 5] [--before main] [--lines 300,3000]

The issue's figure: with SO_PEERCRED removed from the socket module in every
perfd process, each call of the code before this change started a daemon that
died at its first connection, waited about 5.4 s, and only then answered
in-process. This prints, per workspace size (one synthetic plan of --lines
lines), the median wall time of `perfd generate --next` in these cases, run
side by side, A B C D, --rounds times:

- no SO_PEERCRED, this tree (answers in-process at once, one notice line);
- --no-daemon, this tree (the in-process call it should match);
- a warm daemon, this tree, with SO_PEERCRED (the usual fast path);
- no SO_PEERCRED, the --before revision (`git archive` of daemon/perfd), fewer
  rounds as each takes seconds; skipped with --before "".

Every daemon a row starts lives in the bench's own runtime folder and is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from synthetic import plan_of_lines, write_workspace  # beside this file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
TREE = os.path.join(REPO, "daemon")

NO_SO_PEERCRED = """import _socket, socket
for mod in (_socket, socket):
    if hasattr(mod, "SO_PEERCRED"):
        delattr(mod, "SO_PEERCRED")
"""


def timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{argv} failed: {r.stderr[:300]}")
    return dt, r.stderr.splitlines()[0] if r.stderr else ""


def env_for(base: str, name: str, *, tree: str, sim: str | None) -> dict[str, str]:
    path = [tree] + ([sim] if sim else [])
    e = dict(os.environ, PYTHONPATH=os.pathsep.join(reversed(path)) if sim else tree,
             PERFD_RUNTIME_DIR=os.path.join(base, "r-" + name), PERFD_STATE_DIR=os.path.join(base, "s-" + name))
    e.pop("PERFD_IDLE_TIMEOUT_S", None)
    return e


def stop_daemons(envs: list[dict[str, str]]) -> None:
    for e in envs:
        folder = e["PERFD_RUNTIME_DIR"]
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.endswith(".pid"):
                try:
                    with open(os.path.join(folder, name)) as f:
                        os.kill(int(f.read().strip()), signal.SIGTERM)
                except (OSError, ValueError):
                    pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--before", default="main", help="a git revision to compare with ('' to skip)")
    ap.add_argument("--lines", default="300,3000", help="plan sizes, comma-separated")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="pdbp", dir="/tmp")  # short: socket paths
    envs: list[dict[str, str]] = []
    try:
        sim = os.path.join(base, "sim")
        os.makedirs(sim)
        with open(os.path.join(sim, "sitecustomize.py"), "w") as f:
            f.write(NO_SO_PEERCRED)
        before_tree = ""
        if args.before:
            before_tree = os.path.join(base, "before")
            os.makedirs(before_tree)
            archive = subprocess.run(["git", "-C", REPO, "archive", args.before, "daemon/perfd"], capture_output=True,
                                     check=True).stdout
            subprocess.run(["tar", "-x", "-C", before_tree], input=archive, check=True)
            before_tree = os.path.join(before_tree, "daemon")
        print(f"python {sys.version.split()[0]} on {sys.platform}; median wall seconds of `perfd generate --next`"
              f" over {args.rounds} rounds (before: {max(1, args.rounds // 2)})")
        print(f"{'plan lines':>10}  {'case':<38} {'median s':>9} {'vs --no-daemon':>15}  first stderr line")
        for lines in (int(x) for x in args.lines.split(",")):
            root = os.path.join(base, f"ws{lines}")
            write_workspace(root, "BENCH", plan_of_lines(lines))
            argv = [sys.executable, "-m", "perfd", "generate", "--next", "@BENCH"]
            cases = {
                "no SO_PEERCRED (this tree)": (argv, env_for(base, f"a{lines}", tree=TREE, sim=sim)),
                "--no-daemon (this tree)": (argv[:3] + ["--no-daemon"] + argv[3:],
                                            env_for(base, f"b{lines}", tree=TREE, sim=None)),
                "warm daemon, SO_PEERCRED (this tree)": (argv, env_for(base, f"c{lines}", tree=TREE, sim=None)),
            }
            if before_tree:
                cases[f"no SO_PEERCRED ({args.before})"] = (argv, env_for(base, f"d{lines}", tree=before_tree,
                                                                           sim=sim))
            envs += [e for _a, e in cases.values()]
            timed(*cases["warm daemon, SO_PEERCRED (this tree)"], cwd=root)  # start it
            times: dict[str, list[float]] = {k: [] for k in cases}
            notes: dict[str, str] = {}
            for i in range(args.rounds):
                for name, (a, e) in cases.items():
                    if name.endswith(f"({args.before})") and i >= max(1, args.rounds // 2):
                        continue
                    dt, note = timed(a, e, root)
                    times[name].append(dt)
                    notes[name] = note
            ref = statistics.median(times["--no-daemon (this tree)"])
            for name, ts in times.items():
                med = statistics.median(ts)
                print(f"{lines:>10}  {name:<38} {med:>9.3f} {med / ref:>14.2f}x  {notes[name][:90]}")
        return 0
    finally:
        stop_daemons(envs)
        time.sleep(0.3)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
