"""What read-your-writes costs, side by side in one run: the guarantee on and off on one daemon.

    python tests/bench/bench_freshness.py [--sizes 3,1500] [--rounds 1000] [--cli-runs 21]

For each size (a synthetic workspace of tests/bench/synthetic.py), one daemon:
- warm `status` and `generate` (the next step of a plan) over the socket, with the guarantee on (the
  watcher's pending events taken before each answer) and off (`"sync": false`: what it has reported so
  far), alternating request by request; --rounds rounds of 4 requests (2,000 or more in all).
  Printed: each median, the added p50, and the median of the paired differences.
  Goal: at most 0.1 ms p50 added.
- the warm CLI (`perfd status --json`, the thin client through the daemon) against `python -c pass`,
  alternating run by run, median ratio. Goal: within 1.3x. (Measured here with this tree on PYTHONPATH;
  the release figure is taken in a fresh virtual environment: tests/bench/bench_startup_cli.py --perfd.)
- an external change pushed to subscribers (planChanged, sent in the same call that refreshes every
  editor session): from the write's return to the notification's arrival, p50 and p99 over 100 writes.
  Goal: p99 within 100 ms.
- the verification pass (in-process, on a warm engine of the same workspace): CPU seconds per pass
  (median of 5) and its share of one core at the default interval. Goal: under 1%.
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

from bench_daemon import pct, wall  # noqa: E402
from synthetic import write_scale_workspace  # noqa: E402


def socket_side_by_side(sock: str, plan: str, rounds: int) -> dict[str, list[float]]:
    from perfd.wire.rendezvous import Connection

    times: dict[str, list[float]] = {k: [] for k in ("status on", "status off", "generate on", "generate off")}
    asks = {
        "status on": ("status", {}), "status off": ("status", {"sync": False}),
        "generate on": ("generate", {"plan": plan}), "generate off": ("generate", {"plan": plan, "sync": False}),
    }
    order = list(asks)
    with Connection(sock, timeout=30) as c:
        for _ in range(50):  # warm
            for k in order:
                c.call(*asks[k])
        for i in range(rounds):
            # which comes first alternates too: neither side always follows the other
            for k in (order if i % 2 == 0 else [order[1], order[0], order[3], order[2]]):
                method, params = asks[k]
                t0 = time.perf_counter()
                r = c.call(method, params)
                times[k].append(time.perf_counter() - t0)
                if "result" not in r:
                    raise SystemExit(f"{method} failed: {r}")
    return times


def push_latency(sock: str, root: str, plan_path: str, writes: int) -> list[float]:
    """Seconds from a file's write in a plan's folder returning to the arrival of the planChanged notification
    that names it (each write a file of its own, so that a late notification is never taken for another's)."""
    from perfd.wire.rendezvous import Connection

    folder = os.path.join(os.path.dirname(plan_path), "notes")
    os.makedirs(folder, exist_ok=True)
    out = []
    with Connection(sock, timeout=30) as c:
        c.call("subscribe")
        for i in range(writes):
            path = os.path.join(folder, f"note-{i}.md")
            with open(path, "w") as f:
                f.write("a note\n")
            t1 = time.perf_counter()
            while True:
                msg = c.recv()
                if (isinstance(msg, dict) and msg.get("method") == "planChanged"
                        and path in msg["params"].get("changed", [])):
                    out.append(time.perf_counter() - t1)
                    break
            time.sleep(0.06)  # past the debounce: each write its own batch
    return out


def verify_cost(root: str, passes: int = 5) -> tuple[float, int]:
    """(median CPU seconds of one verification pass over a warm engine, paths it stats)."""
    from perfd.engine.engine import Engine
    from perfd.runtime.verify import Verifier

    eng = Engine(root)
    try:
        eng.status()
        for plan in eng.plans()[:50]:
            eng.generate(plan)
        cpu = []
        n = 0
        for _ in range(passes):
            v = Verifier(eng.verification, interval_s=10.0)
            t0 = time.process_time()
            v.run_once()
            cpu.append(time.process_time() - t0)
        n = len(set(eng.cache.held_keys()))
        return statistics.median(cpu), n
    finally:
        eng.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3,1500")
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--cli-runs", type=int, default=21)
    ap.add_argument("--writes", type=int, default=100)
    opts = ap.parse_args()
    from perfd.cli import daemon_ctl
    from perfd.settings.schema import DaemonSettings
    from perfd.wire.rendezvous import Connection, state_paths

    interval = DaemonSettings().verify_interval_s
    base = tempfile.mkdtemp(prefix="pdf", dir="/tmp")
    results = []
    try:
        for size in [int(s) for s in opts.sizes.split(",")]:
            root = os.path.realpath(os.path.join(base, f"ws{size}"))
            plans = write_scale_workspace(root, size)
            env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(base, "r"),
                       PERFD_STATE_DIR=os.path.join(base, "s"), PYTHONPATH=os.path.join(REPO, "daemon"),
                       PERFD_IDLE_TIMEOUT_S="3600")
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            os.environ.update(PERFD_RUNTIME_DIR=env["PERFD_RUNTIME_DIR"], PERFD_STATE_DIR=env["PERFD_STATE_DIR"])
            perfd = [sys.executable, "-m", "perfd"]
            wall(perfd + ["status"], env, root)  # starts the daemon
            sock = state_paths(root).sock
            with Connection(sock, timeout=60) as c:
                t_end = time.monotonic() + 120
                while not ((c.call("stats")["result"].get("watcher") or {}).get("synced")):
                    if time.monotonic() > t_end:
                        raise SystemExit("the watcher did not come up")
                    time.sleep(0.05)
            # The warm-up's last steps (a stat-check of what it read before the watcher came up, the stores
            # written) follow the watcher's start, and hold the event loop for a moment at 1,500 plans:
            # steady state is what is measured.
            time.sleep(3)
            plan = "@" + os.path.basename(plans[0])[5:-3]
            times = socket_side_by_side(sock, plan, opts.rounds)
            cli, floor = [], []
            for _ in range(opts.cli_runs):
                cli.append(wall(perfd + ["status", "--json"], env, root))
                floor.append(wall([sys.executable, "-c", "pass"], env, root))
            pushes = push_latency(sock, root, plans[1], opts.writes)
            daemon_ctl.stop(root, timeout=60)
            cpu, held = verify_cost(root)
            results.append((size, times, cli, floor, pushes, cpu, held))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    ms = 1000.0
    print(f"read-your-writes on and off, one daemon, alternating ({opts.rounds} rounds of 4 requests)")
    print(f"{'plans':>6} {'ask':>9} {'p50 on':>9} {'p50 off':>9} {'added':>9} {'paired':>9}   goal <= 0.1 ms")
    goals = []
    for size, times, cli, floor, pushes, cpu, held in results:
        for ask in ("status", "generate"):
            on, off = times[f"{ask} on"], times[f"{ask} off"]
            added = (statistics.median(on) - statistics.median(off)) * ms
            paired = statistics.median(a - b for a, b in zip(on, off)) * ms
            ok = added <= 0.1
            goals.append(ok)
            print(f"{size:>6} {ask:>9} {statistics.median(on) * ms:>8.3f}  {statistics.median(off) * ms:>8.3f}"
                  f"  {added:>+8.3f}  {paired:>+8.3f}   {'met' if ok else 'MISSED'}")
    print()
    print(f"{'plans':>6} {'warm CLI':>10} {'python -c pass':>15} {'ratio':>7}   goal <= 1.3x")
    for size, times, cli, floor, pushes, cpu, held in results:
        ratio = statistics.median(c / f for c, f in zip(cli, floor))
        ok = ratio <= 1.3
        goals.append(ok)
        print(f"{size:>6} {statistics.median(cli) * ms:>8.1f} ms {statistics.median(floor) * ms:>12.1f} ms"
              f" {ratio:>6.2f}x   {'met' if ok else 'MISSED'}")
    print()
    print(f"{'plans':>6} {'push p50':>10} {'push p99':>10}   external change -> subscribers and editors, goal p99 <= 100 ms")
    for size, times, cli, floor, pushes, cpu, held in results:
        p99 = pct(pushes, 0.99) * ms
        ok = p99 <= 100
        goals.append(ok)
        print(f"{size:>6} {statistics.median(pushes) * ms:>8.1f} ms {p99:>8.1f} ms   {'met' if ok else 'MISSED'}")
    print()
    print(f"{'plans':>6} {'paths':>7} {'CPU/pass':>10} {'share at ' + format(interval, 'g') + ' s':>14}   goal < 1% of one core")
    for size, times, cli, floor, pushes, cpu, held in results:
        share = cpu / interval
        ok = share < 0.01
        goals.append(ok)
        print(f"{size:>6} {held:>7} {cpu * ms:>7.1f} ms {share:>13.3%}   {'met' if ok else 'MISSED'}")
    print()
    print("all goals met" if all(goals) else "some goals MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
