"""What the settings check costs a warm answer: the daemon's request_settings beside a warm generate.

Before every answer the daemon sees its settings again (perfd.settings.live:
a few stat calls; the files are read again only when one changed) and checks
the caller's PERFD_* against its own. This bench times a warm `generate
--next` on a real engine, with and without that check, in paired runs that
alternate (A B A B ...), each of N calls, and prints the median added time per
call and the median ratio. Goal: at most 0.1 ms added (the settings issue).

    python tests/bench/bench_settings.py [--pairs 21] [--calls 2000]

The workspace has a perfd.toml, a user config and a trust record, so every
source the check stats exists; the caller sends PERFD_* variables, as the CLI
does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "daemon"))

from perfd.daemon.host import Subscribers, WarmSignals  # noqa: E402
from perfd.daemon.methods import Methods  # noqa: E402
from perfd.engine.engine import Engine  # noqa: E402
from perfd.settings.live import LiveSettings  # noqa: E402
from perfd.settings.resolve import trust_now  # noqa: E402

EXAMPLE = HERE.parents[1] / "daemon" / "perfd" / "example"
GOAL_MS = 0.1


class _Nothing:
    """The stats, stop signal and model source a Methods is given: unused by the check."""

    def snapshot(self) -> None: ...
    async def refresh_team(self) -> None: ...
    def uptime(self) -> float: return 0.0
    def clear_state(self) -> None: ...
    def stop(self, reason: str) -> None: ...
    def __call__(self, variables: object = None) -> None: return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=21)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="perfd-bench-settings-")
    try:
        os.environ["PERFD_STATE_DIR"] = os.path.join(base, "state")
        os.environ["XDG_CONFIG_HOME"] = os.path.join(base, "cfg")
        root = os.path.join(base, "ws")
        shutil.copytree(EXAMPLE, root)
        Path(root, "perfd.toml").write_text('[cache]\nttl_s = 3600\n[llm]\nbase_url = "http://127.0.0.1:9/v1"\n'
                                           'model = "m"\n')
        Path(base, "cfg", "perfd").mkdir(parents=True)
        Path(base, "cfg", "perfd", "config.toml").write_text('[daemon]\nidle_timeout_s = 600\n')
        trust_now(root)
        live = LiveSettings(root)
        engine = Engine(root, settings=live.current())
        nothing = _Nothing()
        methods = Methods(root, engine, stats=nothing, subscribers=Subscribers(), warm=WarmSignals(),
                          stop=nothing, llm=nothing, watching=lambda: True, settings=live,
                          started_settings=live.fingerprint(live.current(), "workspace", "cache", "daemon"))
        variables = {"PERFD_LLM_MODEL": "m", "PERFD_TRUSTED_PATHS": ""}  # what a caller's CLI sends
        engine.generate("@API-CLIENT", cwd=root)  # warm

        def plain() -> float:
            t0 = time.perf_counter_ns()
            for _ in range(args.calls):
                engine.generate("@API-CLIENT", cwd=root)
            return (time.perf_counter_ns() - t0) / args.calls / 1e6

        def checked() -> float:
            t0 = time.perf_counter_ns()
            for _ in range(args.calls):
                methods.request_settings(variables)
                engine.generate("@API-CLIENT", cwd=root)
            return (time.perf_counter_ns() - t0) / args.calls / 1e6

        plain(), checked()  # warm both paths
        added, ratios, a_ms, b_ms = [], [], [], []
        for i in range(args.pairs):
            first, second = (plain, checked) if i % 2 == 0 else (checked, plain)
            x, y = first(), second()
            p, c = (x, y) if first is plain else (y, x)
            a_ms.append(p)
            b_ms.append(c)
            added.append(c - p)
            ratios.append(c / p)
        assert live.reloads == 0, "nothing changed, so nothing was read again"
        med = statistics.median(added)
        print(f"warm generate --next at the engine, {args.pairs} paired runs of {args.calls} calls, alternating")
        print(f"{'':28}{'median':>10}{'min':>10}{'max':>10}")
        print(f"{'without the check (ms)':28}{statistics.median(a_ms):10.4f}{min(a_ms):10.4f}{max(a_ms):10.4f}")
        print(f"{'with the check (ms)':28}{statistics.median(b_ms):10.4f}{min(b_ms):10.4f}{max(b_ms):10.4f}")
        print(f"{'added per call (ms)':28}{med:10.4f}{min(added):10.4f}{max(added):10.4f}")
        print(f"{'ratio with / without':28}{statistics.median(ratios):10.3f}{min(ratios):10.3f}{max(ratios):10.3f}")
        print(f"goal: at most {GOAL_MS} ms added per call: {'met' if med <= GOAL_MS else 'MISSED'}")
        return 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
