"""Shell completion benchmark: the time from a <TAB> to the words, as bash's completion function runs it
(`_perfd`, which runs `perfd __complete`), on workspaces of 3 and 1,500 plans: @PLAN names and a plan's
achievement numbers, asked of a warm daemon and in-process (no daemon running).

Run: python tests/bench/bench_completion.py [--rounds N] [--sizes 3,1500]

Goal (issue 25): within 100 ms warm (with the daemon). The `perfd` run is the installed script's
(the one on PATH), as a shell runs it.
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
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from synthetic import write_scale_workspace  # noqa: E402

GOAL_MS = 100.0

# `perfd __complete plans` as a shell runs it, and the same words asked the former way (a whole `status --json`
# from the daemon, decoded for its plan names): the same interpreter start, the same daemon, alternating.
NAMES = "import os; from perfd.cli.client import complete; complete(['plans'], os.getcwd())"
FORMER = ("import os, sys; from perfd.cli.client import cli_request; from perfd.paths import find_workspace_root; "
          "from perfd.wire.ipc import RAW_PREFIX, parse_raw; from perfd.wire.rendezvous import connect, exchange, "
          "state_paths; root = os.path.realpath(find_workspace_root(os.getcwd())); "
          "s = connect(state_paths(root).sock, 2.0); body = exchange(s, cli_request(['status', '--json'], os.getcwd(), "
          "root)); s.close(); from perfd.app.completion import completion_words; "
          "w = completion_words('plans', parse_raw(body)[1].decode()); sys.stdout.write(chr(10).join(w) + chr(10))")


def names_side_by_side(root: str, env: dict[str, str], rounds: int) -> tuple[float, float, int, int]:
    """(median ms of `perfd __complete plans` through `names`, of the former way, words each printed)."""
    times: dict[str, list[float]] = {"names": [], "former": []}
    words = {}
    for _ in range(rounds):
        for k, code in (("names", NAMES), ("former", FORMER)):
            t = time.perf_counter()
            got = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
            times[k].append(time.perf_counter() - t)
            words[k] = len(got.stdout.split())
    return (statistics.median(times["names"]) * 1000, statistics.median(times["former"]) * 1000, words["names"],
            words["former"])


def environ(base: str) -> dict[str, str]:
    env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(base, "r"), PERFD_STATE_DIR=os.path.join(base, "s"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.join(REPO, "daemon"), env.get("PYTHONPATH")) if p)
    return env


def tab_ms(script: str, words: list[str], root: str, env: dict[str, str], rounds: int) -> tuple[float, int, float]:
    """(median ms of the completion, words offered, median ms of `perfd --version` from bash in the same
    rounds: the floor of any perfd call on this machine now, interleaved so that load hits both alike)."""
    arr = " ".join("'" + w + "'" for w in words)
    code = f'source {script}; COMP_WORDS=({arr}); COMP_CWORD={len(words) - 1}; _perfd; echo "${{#COMPREPLY[@]}}"'
    times, floor, offered = [], [], 0
    for _ in range(rounds):
        t = time.perf_counter()
        got = subprocess.run(["bash", "--norc", "-c", code], cwd=root, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        offered = int(got.stdout.strip() or 0)
        t = time.perf_counter()
        subprocess.run(["bash", "--norc", "-c", "perfd --version"], cwd=root, env=env, capture_output=True)
        floor.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, offered, statistics.median(floor) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sizes", default="3,1500")
    args = ap.parse_args()
    if shutil.which("perfd") is None:
        print("no `perfd` on PATH: pip install -e . first")
        return 1
    rows = []
    direct = []
    for size in (int(s) for s in args.sizes.split(",")):
        base = tempfile.mkdtemp(prefix="pdcomp", dir="/tmp")
        root = os.path.join(base, "ws")
        os.makedirs(root)
        write_scale_workspace(root, size)
        env = environ(base)
        script = os.path.join(base, "perfd.bash")
        with open(script, "w") as f:
            f.write(subprocess.run(["perfd", "completion", "bash"], env=env, capture_output=True, text=True,
                                   check=True).stdout)
        status = subprocess.run(["perfd", "--no-daemon", "status", "--json"], cwd=root, env=env, capture_output=True,
                                text=True, check=True).stdout
        plan = "@" + status.split('"plan":"', 1)[1].split('"', 1)[0]
        try:
            cold = {w: tab_ms(script, ["perfd", "generate", *w], root, env, args.rounds) for w in (("@",), (plan, ""))}
            subprocess.run(["perfd", "daemon", "start"], cwd=root, env=env, capture_output=True, check=True)
            subprocess.run(["perfd", "status"], cwd=root, env=env, capture_output=True, check=True)
            warm = {w: tab_ms(script, ["perfd", "generate", *w], root, env, args.rounds) for w in (("@",), (plan, ""))}
            direct.append((size, *names_side_by_side(root, env, 3 * args.rounds)))
        finally:
            subprocess.run(["perfd", "daemon", "stop"], cwd=root, env=env, capture_output=True)
            shutil.rmtree(base, ignore_errors=True)
        for (what, key) in (("@PLAN names", ("@",)), ("achievements after a plan", (plan, ""))):
            (w_ms, n, floor), (c_ms, n_cold, _) = warm[key], cold[key]
            if n_cold != n:
                print(f"in-process offered {n_cold} words where the daemon offered {n} ({size} plans, {what})")
            rows.append((size, what, n, w_ms, c_ms, floor))
    print(f"perfd shell completion: <TAB> to words, bash's _perfd (median of {args.rounds})")
    print()
    hdr = (f"{'plans':>6} {'completing':28} {'words':>6} {'daemon ms':>10} {'in-proc ms':>11} "
           f"{'--version ms':>13} {'daemon/goal':>12}")
    print(hdr)
    print("-" * len(hdr))
    missed = 0
    for size, what, n, w_ms, c_ms, floor in rows:
        verdict = "ok" if w_ms <= GOAL_MS else "MISSED"
        missed += verdict == "MISSED"
        print(f"{size:6d} {what:28} {n:6d} {w_ms:10.1f} {c_ms:11.1f} {floor:13.1f} {w_ms / GOAL_MS:11.2f}x  {verdict}")
    print()
    print()
    print(f"{'plans':>6} {'__complete plans ms':>20} {'former way ms':>14} {'ratio':>6}   (python -c, warm daemon, alternating,"
          f" median of {3 * args.rounds})")
    for size, new_ms, old_ms, n_new, n_old in direct:
        print(f"{size:6d} {new_ms:20.1f} {old_ms:14.1f} {new_ms / old_ms:5.2f}x" + (
            "" if n_new == n_old else f"   words differ: {n_new} vs {n_old}"))
    print("former way: the whole `status --json` from the daemon, decoded for its plan names (the path before `names`)")
    print("--version: bash running `perfd --version`, in the same rounds: the floor of any perfd call here now")
    print(f"goal: within {GOAL_MS:.0f} ms warm (with the daemon); goals missed: {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
