"""Scale benchmark: status and generate at 3, 30, 300 and 1,500 plans, in-process and through a daemon.

    python tests/bench/bench_scale.py [--sizes 3,30,300,1500] [--runs 5] [--keep] [--only cold] [--cold-runs N]

Builds a synthetic workspace per size (tests/bench/synthetic.py: a 3,000-line
PLAN with SUBPLANs, EXECUTION_TASKs, APPROVED and FIX files per plan, some in
grouping folders, some loose PLAN files beside them), with private runtime and
state folders, and runs perfd from this tree with bytecode caches on, as an installed
perfd has them (this machine's PYTHONDONTWRITEBYTECODE=1 would have every process, the
daemon and each parse worker included, compile perfd from source). It prints one row per
size:

- `--no-daemon status`: a new process parsing in-process (on every core);
- single-process parse: the same with PERFD_PARSE_WORKERS=1;
- first status of a new daemon (its parse and answer stores deleted; autostart included);
- first status after a restart (the daemon stopped, its parse and answer stores kept);
- warm `status --json` and warm `generate --next` (medians of --runs);
- approve -> next: an APPROVED file created for a plan's next achievement,
  `generate` polled over the socket until its next achievement changes (median);
- the daemon's RSS after all that.

`--only cold` measures the first four columns alone (a quicker loop while working on them);
`--cold-runs N` takes the median of N runs of each of them (default: 1 at 1,000 plans and more,
else up to 3).

Then the issue's goals as ratios taken in this one run, each met or MISSED.
The smallest size (3 plans) is always measured: it is the reference of the
warm-status goal. The 1,500-plan size writes about 45,000 files and takes
minutes on 2 shared cores: run it once, niced, when the machine is quiet.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "daemon"))
sys.path.insert(0, HERE)

from bench_daemon import wall  # noqa: E402  (beside this file: one way to time a whole call)
from synthetic import write_scale_workspace  # noqa: E402


class Row:
    def __init__(self, plans: int) -> None:
        self.plans = plans
        self.files = 0
        self.no_daemon = 0.0
        self.single = 0.0
        self.new_daemon = 0.0
        self.restart = 0.0
        self.warm_status = 0.0
        self.warm_generate = 0.0
        self.approve_next = 0.0
        self.rss_mb = 0.0
        self.parse_workers = 0


def measure(plans: int, runs: int, base: str, *, only_cold: bool = False, cold_runs: int = 0) -> Row:
    from perfd.cli import daemon_ctl
    from perfd.wire.rendezvous import Connection, state_paths

    row = Row(plans)
    root = os.path.realpath(os.path.join(base, f"ws{plans}"))
    write_scale_workspace(root, plans)
    row.files = sum(len(f) for _d, _s, f in os.walk(root))
    env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(base, "r"), PERFD_STATE_DIR=os.path.join(base, "s"),
               PYTHONPATH=os.path.join(REPO, "daemon"), PERFD_IDLE_TIMEOUT_S="3600")
    # With bytecode caches, as an installed perfd has them (pip compiles them; bench_daemon and
    # bench_startup_cli measure the same way): this machine sets PYTHONDONTWRITEBYTECODE=1, which
    # makes every process compile perfd from source, the daemon and each parse worker included.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.update(PERFD_RUNTIME_DIR=env["PERFD_RUNTIME_DIR"], PERFD_STATE_DIR=env["PERFD_STATE_DIR"])
    py = sys.executable
    perfd = [py, "-m", "perfd"]
    paths = state_paths(root)
    store = os.path.join(os.path.dirname(paths.log), os.path.basename(paths.log)[:-4] + ".parse")
    cold_runs = cold_runs or (1 if plans >= 1000 else max(1, min(3, runs)))
    try:
        daemon_ctl.stop(root)
        wall(perfd + ["--no-daemon", "status"], env, root)  # the page cache and bytecode, for every later column
        row.no_daemon = statistics.median(wall(perfd + ["--no-daemon", "status"], env, root) for _ in range(cold_runs))
        one = dict(env, PERFD_PARSE_WORKERS="1")
        row.single = statistics.median(wall(perfd + ["--no-daemon", "status"], one, root) for _ in range(cold_runs))
        news, restarts = [], []
        for _ in range(cold_runs):
            daemon_ctl.stop(root, timeout=60)
            for persisted in (store, store[:-len(".parse")] + ".answers"):  # parsed files, and answers
                if os.path.exists(persisted):
                    os.unlink(persisted)
            news.append(wall(perfd + ["status"], env, root))
            daemon_ctl.stop(root, timeout=60)  # writes the parse store
            restarts.append(wall(perfd + ["status"], env, root))
        row.new_daemon, row.restart = statistics.median(news), statistics.median(restarts)
        if only_cold:
            return row
        wall(perfd + ["status", "--json"], env, root)
        row.warm_status = statistics.median(wall(perfd + ["status", "--json"], env, root) for _ in range(runs))
        target = "@FEAT-0000"
        row.warm_generate = statistics.median(wall(perfd + ["generate", "--next", target], env, root)
                                              for _ in range(runs))
        row.approve_next = approve_to_next(root, target, runs)
        with Connection(paths.sock) as c:
            st = c.call("stats")["result"]
        row.rss_mb = st["rss_bytes"] / 1048576
    finally:
        daemon_ctl.stop(root, timeout=60)
    return row


def approve_to_next(root: str, plan: str, runs: int) -> float:
    """Median seconds from creating APPROVED_<NN>.md for the next achievement to `generate` naming another."""
    from perfd.wire.rendezvous import Connection, state_paths

    times = []
    with Connection(state_paths(root).sock, timeout=30) as c:
        for _ in range(runs):
            first = c.call("generate", {"plan": plan})["result"]
            number = first["achievement"]
            folder = os.path.dirname(first["plan_path"])
            fb = os.path.join(folder, "execution", "feedbacks")
            approved = os.path.join(fb, f"APPROVED_{number.replace('.', '')}.md")
            t0 = time.perf_counter()
            with open(approved, "w") as f:
                f.write(f"# APPROVED: Achievement {number}\n")
            while True:
                got = c.call("generate", {"plan": plan})["result"]
                if got["achievement"] != number:
                    break
                if time.perf_counter() - t0 > 10:
                    raise SystemExit(f"approve -> next: {plan} still at {number} after 10 s")
                time.sleep(0.002)
            times.append(time.perf_counter() - t0)
            os.unlink(approved)
            while c.call("generate", {"plan": plan})["result"]["achievement"] != number:
                time.sleep(0.005)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3,30,300,1500", help="plan counts, comma-separated (3 is always added)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the workspaces (printed) instead of deleting them")
    ap.add_argument("--only", choices=["cold"], help="cold: measure only the --no-daemon, single-process, new"
                    " daemon and restart columns")
    ap.add_argument("--cold-runs", type=int, default=0, help="runs of each cold column (median)")
    opts = ap.parse_args()
    only_cold = opts.only == "cold"
    sizes = sorted({3, *(int(s) for s in opts.sizes.split(",") if s.strip())})
    base = tempfile.mkdtemp(prefix="pscale", dir="/tmp")
    rows = []
    try:
        for n in sizes:
            rows.append(measure(n, opts.runs, base, only_cold=only_cold, cold_runs=max(0, opts.cold_runs)))
    finally:
        if opts.keep:
            print(f"(workspaces kept in {base})")
        else:
            shutil.rmtree(base, ignore_errors=True)
    from perfd.engine.cache.parse_pool import workers_wanted

    cold = f"{opts.cold_runs}" if opts.cold_runs > 0 else "up to 3"
    print(f"perfd scale benchmark · synthetic real-shaped plans · {opts.runs} runs (cold columns: {cold}) ·"
          f" python {sys.version.split()[0]} · {os.cpu_count()} cores, {workers_wanted()} parse workers")
    print()
    head = ["plans", "files", "--no-daemon status", "single-process", "first status, new daemon",
            "first status after a restart", "warm status --json", "warm generate --next", "approve -> next",
            "daemon RSS"]
    shown = 6 if only_cold else len(head)
    head = head[:shown]
    table = [head]
    for r in rows:
        table.append([f"{r.plans:,}", f"{r.files:,}", f"{r.no_daemon:.2f} s", f"{r.single:.2f} s",
                      f"{r.new_daemon:.2f} s", f"{r.restart:.2f} s", f"{r.warm_status * 1000:.0f} ms",
                      f"{r.warm_generate * 1000:.0f} ms", f"{r.approve_next * 1000:.0f} ms",
                      f"{r.rss_mb:.0f} MB"][:shown])
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    for t in table:
        print("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(t)))
    print()
    small, big = rows[0], rows[-1]
    goals = [
        (f"warm status --json at {big.plans:,} <= 2x at {small.plans}",
         big.warm_status / small.warm_status if small.warm_status else 0.0, 2.0, "x"),
        (f"first status after a restart <= 1/10 of --no-daemon ({big.plans:,})", big.restart / big.no_daemon, 0.1,
         "x"),
        (f"first status, new daemon <= 0.6x single-process parse ({big.plans:,})", big.new_daemon / big.single, 0.6,
         "x"),
        (f"approve -> next <= 100 ms ({big.plans:,})", big.approve_next * 1000, 100.0, " ms"),
        (f"daemon RSS <= 150 MB ({big.plans:,})", big.rss_mb * 1.048576, 150.0, " MB"),
    ]
    if only_cold:
        goals = goals[1:3]
    missed = 0
    for label, value, goal, unit in goals:
        verdict = "met" if value <= goal else "MISSED"
        missed += verdict == "MISSED"
        shown = f"{value:.2f}{unit}" if unit == "x" else f"{value:.0f}{unit}"
        print(f"{label:62} {shown:>10}  {verdict}")
    if big.plans < 1500:
        print(f"(the goals are for 1,500 plans; this run's largest size is {big.plans:,})")
    print(f"goals missed: {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
