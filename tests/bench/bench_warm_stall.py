"""Whether requests keep being answered while the daemon warms up: the longest gap between answers.

    python tests/bench/bench_warm_stall.py [--plans 1500] [--after-synced 5]
    PYTHONPATH=<another tree>/daemon python tests/bench/bench_warm_stall.py   # the same bench, that tree's code

A synthetic workspace (tests/bench/synthetic.py) and a new daemon (`perfd daemon run`) on it, no stores
yet. One client connects as soon as the socket is up and asks continuously, one request after the other:
`ping`, with a `status` every 10th request and a `stats` every 5th (which says when the watcher is synced),
from the daemon's start until --after-synced seconds after its watcher is synced. Printed: when the first
status was answered and the watcher synced, the number of answers, and the longest gaps between two
answers after the first status (what the client waited for one answer), with what was asked.
Goal: no gap above 50 ms after the first status is answered.

The code measured is the one `import perfd` finds: this tree's, unless PYTHONPATH names another (which
the daemon inherits).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
if not os.environ.get("PYTHONPATH"):
    os.environ["PYTHONPATH"] = os.path.join(REPO, "daemon")
    sys.path.insert(0, os.path.join(REPO, "daemon"))
sys.path.insert(0, HERE)

from synthetic import write_scale_workspace  # noqa: E402

GOAL_MS = 50.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plans", type=int, default=1500)
    ap.add_argument("--after-synced", type=float, default=5.0)
    opts = ap.parse_args()
    import perfd
    from perfd.wire.rendezvous import Connection, state_paths

    base = tempfile.mkdtemp(prefix="pws", dir="/tmp")
    try:
        root = os.path.realpath(os.path.join(base, "ws"))
        write_scale_workspace(root, opts.plans)
        env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(base, "r"), PERFD_STATE_DIR=os.path.join(base, "s"),
                   PERFD_IDLE_TIMEOUT_S="3600")
        os.environ.update(PERFD_RUNTIME_DIR=env["PERFD_RUNTIME_DIR"], PERFD_STATE_DIR=env["PERFD_STATE_DIR"])
        sock = state_paths(root).sock
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "perfd", "daemon", "run", "--root", root], env=env, cwd=root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            answers: list[tuple[float, str]] = []  # (when answered, what was asked)
            first_status = synced = None
            while True:
                try:
                    conn = Connection(sock, timeout=60)
                    break
                except OSError:
                    if time.monotonic() - t0 > 60 or proc.poll() is not None:
                        raise SystemExit("the daemon did not come up")
                    time.sleep(0.005)
            with conn:
                i = 0
                while synced is None or time.monotonic() < synced + opts.after_synced:
                    method = "status" if i % 10 == 0 else "stats" if i % 5 == 0 else "ping"
                    i += 1
                    r = conn.call(method)
                    now = time.monotonic()
                    if "result" not in r:
                        raise SystemExit(f"{method}: {r}")
                    answers.append((now, method))
                    if method == "status" and first_status is None:
                        first_status = now
                    if method == "stats" and synced is None and (r["result"].get("watcher") or {}).get("synced"):
                        synced = now
                    if time.monotonic() - t0 > 300:
                        raise SystemExit("the watcher did not come up")
        finally:
            proc.terminate()
            proc.wait(60)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    assert first_status is not None and synced is not None
    # A gap ending in a ping or stats answer is the loop held by something else (the warm-up, the watcher's
    # start, the stores written); one ending in a status answer adds that status's own work: before the
    # watcher is synced every status stat-checks every plan's inputs (read-your-writes without a watcher).
    gaps = sorted(((b[0] - a[0], b[1], b[0] - t0) for a, b in zip(answers, answers[1:]) if a[0] >= first_status),
                  reverse=True)
    ms = 1000.0
    print(f"warm-up stall, {opts.plans} plans, a new daemon (no stores), code of {os.path.dirname(perfd.__file__)}")
    print(f"first status answered {first_status - t0:.2f} s after start, watcher synced {synced - t0:.2f} s,"
          f" {len(answers)} answers until {opts.after_synced:g} s later")
    print("longest gaps after the first status: " + ", ".join(
        f"{g * ms:.0f} ms ({m} at {at:.2f} s)" for g, m, at in gaps[:6]))
    rows = [
        ("any answer, after the first status", [g for g in gaps]),
        ("a ping/stats answer, after the first status", [g for g in gaps if g[1] != "status"]),
        ("any answer, once the watcher is synced", [g for g in gaps if g[2] >= synced - t0]),
    ]
    print(f"{'longest gap before':<46} {'ms':>6}   goal <= {GOAL_MS:.0f} ms")
    for what, some in rows:
        worst = some[0][0] * ms if some else 0.0
        print(f"{what:<46} {worst:>6.0f}   {'met' if worst <= GOAL_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
