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
    print("--version: bash running `perfd --version`, in the same rounds: the floor of any perfd call here now")
    print(f"goal: within {GOAL_MS:.0f} ms warm (with the daemon); goals missed: {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
