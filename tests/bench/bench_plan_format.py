"""Parse speed before and after a change to the plan format: the same inputs, two versions of the code.

Run: python tests/bench/bench_plan_format.py [--before main] [--rounds 3] [--plans 1500]

The code of `--before` (a git revision) is exported to a temporary folder; each round runs a child
process on that code and one on this checkout's, alternately, over the same inputs:
- the dense synthetic plans (3,000 and 10,000 lines: hundreds of achievements), cold parse_plan;
- the real fixture plan when present;
- a workspace of 1,500 real-shaped plans: a cold in-process `status` (one process, no parse workers,
  as --no-daemon with PERFD_PARSE_WORKERS=1) and a warm one.
It prints medians of CPU time (the process's own, so other work on a shared machine moves the figures
less) side by side, and the ratio after/before (below 1.00 is faster).
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from synthetic import FIXTURES, LARGEST, plan_of_lines, write_scale_workspace, write_workspace  # noqa: E402

CHILD = r"""
import json, sys, time, statistics
from perfd.engine.plan_parser import parse_plan
from perfd.engine.engine import Engine
plans, root, inner = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
out = {}
for label, path in plans:
    data = open(path, "rb").read()
    runs = []
    for _ in range(5):
        t = time.process_time()
        for _ in range(inner):
            parse_plan(data, path)
        runs.append((time.process_time() - t) / inner)
    out["cold parse, " + label] = min(runs)
t = time.process_time()
eng = Engine(root)
ws = eng.status()
out["status cold, in-process, %s plans" % sys.argv[4]] = time.process_time() - t
t = time.process_time()
for _ in range(5):
    eng.status()
out["status warm, in-process, %s plans" % sys.argv[4]] = (time.process_time() - t) / 5
print(json.dumps(out))
"""


def export(rev: str, into: str) -> str:
    """The daemon/ folder of revision `rev`, exported into `into`; its path."""
    archive = subprocess.run(["git", "-C", REPO, "archive", rev, "daemon"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return os.path.join(into, "daemon")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="main", help="the git revision to compare with (default: main)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--plans", type=int, default=1500)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="perfd-bench-format-")
    try:
        os.makedirs(os.path.join(tmp, "before"))
        before = export(args.before, os.path.join(tmp, "before"))
        after = os.path.join(REPO, "daemon")
        plans: list[tuple[str, str]] = []
        for lines in (3_000, 10_000):
            text = plan_of_lines(lines)
            path = write_workspace(os.path.join(tmp, f"s{lines}"), f"SYN{lines}", text)
            plans.append((f"dense synthetic {text.count(chr(10))} lines", path))
        fixture = os.path.join(FIXTURES, "work-space", "plans", LARGEST, f"PLAN_{LARGEST}.md")
        if os.path.exists(fixture):
            plans.append((f"fixture {LARGEST}", fixture))
        root = os.path.join(tmp, "scale")
        write_scale_workspace(root, args.plans)

        samples: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
        for _ in range(args.rounds):
            for side, code in (("before", before), ("after", after)):
                env = dict(os.environ, PYTHONPATH=code, PERFD_PARSE_WORKERS="1")
                env.pop("PERFD_STATE_DIR", None)
                res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(plans), root, "20", str(args.plans)], env=env,
                                     check=True, capture_output=True, text=True)
                for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items():
                    samples[side].setdefault(k, []).append(v)
        print(f"plan format parse speed: {args.rounds} alternating rounds, medians; before = {args.before}, "
              f"after = this checkout; python {sys.version.split()[0]}")
        print()
        hdr = f"{'case':48} {'before':>11} {'after':>11} {'after/before':>13}"
        print(hdr)
        print("-" * len(hdr))
        for k in samples["after"]:
            b = statistics.median(samples["before"].get(k, [float("nan")]))
            a = statistics.median(samples["after"][k])
            print(f"{k:48} {b * 1e3:>8.3f} ms {a * 1e3:>8.3f} ms {a / b:>12.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
