"""What an editor waits for when it opens a workspace whose daemon is not running yet.

    python tests/bench/bench_startup.py [--runs 7]

Each round starts from no daemon and spawns what the VS Code extension spawns at
activation: `perfd lsp` (the relay, which starts the daemon) and, beside it,
`perfd stats --json` (the status bar's first numbers). It times, from the spawn:
- the `perfd stats --json` answer (the extension's first status-bar stats);
- the reply to LSP `initialize`, and the first `perfd/stats` notification after
  `initialized` (the session's own stats);
- then a warm "Generate Next Prompt" (`workspace/executeCommand perfd.generateNext`), perfd's
  part of the 100 ms goal that the e2e test measures to the clipboard;
with attrs' code cache (perfd.daemon.codecache) cold (removed before the round) and warm
(kept from the round before), interleaved round by round so that the machine's
drift hits both alike. A last row times `initialize` through the relay to a
daemon that is already up. The issue's goal (1.5 s from activation to the first
status-bar stats) is measured inside VS Code by the e2e test; this is its
daemon-side part, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from stdio_lsp import StdioLSP  # beside this file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")
PLAN = "work-space/plans/API-CLIENT/PLAN_API-CLIENT.md"
GOAL_MS = 1500.0
GENERATE_GOAL_MS = 100.0  # to the clipboard, in the editor; here only perfd's part of it


def one_start(root: str, env: dict[str, str], *, early_stats: bool) -> dict[str, float]:
    """Spawn the relay (and the early stats call); ms from the spawn to each answer."""
    got: dict[str, float] = {}
    t0 = time.perf_counter()

    def stats_call() -> None:
        r = subprocess.run([sys.executable, "-m", "perfd", "stats", "--json", "--root", root], env=env,
                           capture_output=True, timeout=60)
        if r.returncode != 0 or b'"cache"' not in r.stdout:
            raise SystemExit(f"perfd stats --json failed: {r.stderr.decode()[:300]}")
        got["stats --json"] = (time.perf_counter() - t0) * 1000

    th = threading.Thread(target=stats_call)
    if early_stats:
        th.start()
    server = StdioLSP([sys.executable, "-m", "perfd", "lsp", "--root", root], env)
    try:
        server.send("initialize", {"processId": None, "rootUri": "file://" + root, "capabilities": {}})
        got["initialize"] = (time.perf_counter() - t0) * 1000
        server.send("initialized", {}, request=False)
        while server.read().get("method") != "perfd/stats":
            pass
        got["perfd/stats"] = (time.perf_counter() - t0) * 1000
        # "Generate Next Prompt" as the extension sends it; the second call is the warm one
        generate = {"command": "perfd.generateNext", "arguments": [os.path.join(root, PLAN)]}
        server.send("workspace/executeCommand", generate)
        t1 = time.perf_counter()
        result = server.send("workspace/executeCommand", generate)
        got["generate"] = (time.perf_counter() - t1) * 1000
        if not (isinstance(result, dict) and result.get("prompt")):
            raise SystemExit(f"perfd.generateNext gave no prompt: {result!r:.300}")
    finally:
        server.close()
        if early_stats:
            th.join(60)
    return got


def stop_daemon(root: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "perfd", "daemon", "stop", "--root", root], env=env,
                   capture_output=True, timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    opts = ap.parse_args()
    base = tempfile.mkdtemp(prefix="pbs", dir="/tmp")
    root = os.path.realpath(os.path.join(base, "ws"))
    shutil.copytree(EXAMPLE, root)
    envs = {kind: dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(base, "r"),
                       PERFD_STATE_DIR=os.path.join(base, "s-" + kind)) for kind in ("cold", "warm")}
    rows: dict[str, dict[str, list[float]]] = {"cold": {}, "warm": {}, "daemon up": {}}
    try:
        for kind in ("cold", "warm"):  # once each, unmeasured: page cache, and the warm code cache
            one_start(root, envs[kind], early_stats=True)
            stop_daemon(root, envs[kind])
        for _ in range(opts.runs):
            for kind in ("cold", "warm"):
                if kind == "cold":
                    for f in os.listdir(envs[kind]["PERFD_STATE_DIR"]):
                        if f.startswith("codecache-"):
                            os.unlink(os.path.join(envs[kind]["PERFD_STATE_DIR"], f))
                for k, v in one_start(root, envs[kind], early_stats=True).items():
                    rows[kind].setdefault(k, []).append(v)
                stop_daemon(root, envs[kind])
        one_start(root, envs["warm"], early_stats=False)  # leaves the daemon up (and warm)
        for _ in range(opts.runs):
            for k, v in one_start(root, envs["warm"], early_stats=False).items():
                rows["daemon up"].setdefault(k, []).append(v)
    finally:
        for env in envs.values():
            stop_daemon(root, env)
        shutil.rmtree(base, ignore_errors=True)

    print(f"\ncold start of an editor session, ms from spawning `perfd lsp` (median of {opts.runs}, p95 in brackets)\n")
    print(f"{'daemon':<34} {'stats --json':>16} {'initialize':>16} {'perfd/stats':>16} {'warm generate':>16}")

    def cell(xs: list[float] | None, digits: int = 0) -> str:
        if not xs:
            return "-"
        s = sorted(xs)
        return f"{statistics.median(s):.{digits}f} [{s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]:.{digits}f}]"

    labels = {"cold": "not running, code cache cold", "warm": "not running, code cache warm",
              "daemon up": "already running"}
    for kind, label in labels.items():
        r = rows[kind]
        print(f"{label:<34} {cell(r.get('stats --json')):>16} {cell(r.get('initialize')):>16} "
              f"{cell(r.get('perfd/stats')):>16} {cell(r.get('generate'), 1):>16}")
    cold, warm = rows["cold"]["initialize"], rows["warm"]["initialize"]
    ratio = statistics.median(warm) / statistics.median(cold)
    print(f"\ninitialize, warm code cache / cold: {ratio:.2f}x")
    first = statistics.median(rows["warm"]["stats --json"])
    print(f"first status-bar stats (stats --json, warm code cache): {first:.0f} ms; "
          f"daemon-side part of the {GOAL_MS:.0f} ms goal: {'met' if first <= GOAL_MS else 'MISSED'}")
    gen = statistics.median(rows["daemon up"]["generate"])
    print(f"Generate Next Prompt, perfd's part (executeCommand round trip through the relay, warm): {gen:.1f} ms, "
          f"{gen / GENERATE_GOAL_MS:.2f}x of the {GENERATE_GOAL_MS:.0f} ms goal (the rest is the editor's clipboard: "
          f"npm run e2e)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
