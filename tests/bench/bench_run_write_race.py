"""`perfd run --write` racing a folder flipped for a link out of the workspace: files outside, internal errors.

    python tests/bench/bench_run_write_race.py [--runs 3000]

A copy of the example workspace; a stand-in model server (tests/llm/fakeserver.py)
in this process; a thread flips `subplans/` of @DOCS-SITE between the real folder
and a symbolic link to a folder outside the workspace, as fast as it can, while
`--runs` runs of `perfd run @DOCS-SITE 2.1 --write --force` go one after the
other in-process (the first sends, the others answer from the response cache
and write). Goal (issue 23): 0 files outside the workspace and 0 internal
errors; each run ends in success, a refusal before writing (exit 1: the path
leads outside) or a failed write (exit 5: a link where a folder should be).
The CI test (tests/llm/test_run_write_failures.py) runs 200.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "daemon"))
sys.path.insert(0, os.path.join(REPO, "tests", "llm"))

from fakeserver import FakeServer  # noqa: E402

from perfd.app.run_render import main as run_main  # noqa: E402


def flipper(base: str, outside: str, stop: threading.Event, flips: list[int]) -> None:
    sub, real, link = (os.path.join(base, n) for n in ("subplans", "subplans.real", "subplans.link"))
    while not stop.is_set():
        try:
            os.symlink(outside, link)
            os.rename(sub, real)
            os.rename(link, sub)
        except OSError:
            pass
        try:
            os.unlink(link)
        except OSError:
            pass
        try:
            if os.path.islink(sub):
                os.unlink(sub)
            elif os.path.isdir(sub) and os.path.exists(real):
                shutil.rmtree(sub)  # made by a run meanwhile
            os.rename(real, sub)
        except OSError:
            pass
        flips[0] += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3000)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="perfd-bench-race-")
    ws, outside, state = (os.path.join(base, n) for n in ("ws", "outside", "state"))
    shutil.copytree(os.path.join(REPO, "daemon", "perfd", "example"), ws)
    os.mkdir(outside)
    docs = os.path.join(ws, "work-space", "plans", "a_real-use-cases", "DOCS-SITE")
    codes: dict[int, int] = {}
    internal = 0
    stop = threading.Event()
    flips = [0]
    try:
        with FakeServer() as server:
            env = {"PERFD_LLM_BASE_URL": server.base_url, "PERFD_LLM_MODEL": "fake-model", "PERFD_STATE_DIR": state}
            racer = threading.Thread(target=flipper, args=(docs, outside, stop, flips), daemon=True)
            racer.start()
            t0 = time.perf_counter()
            for _ in range(args.runs):
                out, err = io.StringIO(), io.StringIO()
                try:
                    code = run_main(["run", "@DOCS-SITE", "2.1", "--write", "--force"], ws, out=out, err=err, env=env)
                except Exception:
                    import traceback

                    if internal == 0:
                        traceback.print_exc()
                    code = -1
                if code not in (0, 1, 5) or "Traceback" in err.getvalue() or "internal error" in err.getvalue():
                    internal += 1
                codes[code] = codes.get(code, 0) + 1
            wall = time.perf_counter() - t0
            stop.set()
            racer.join(timeout=10)
            sent = len(server.records)
        left_outside = sum(len(files) for _d, _s, files in os.walk(outside))
        temps = sum(1 for _d, _s, files in os.walk(ws) for f in files if f.startswith(".perfd-"))
        print(f"{args.runs} racing `run --write --force` runs in {wall:.1f} s ({flips[0]} flips, {sent} sent):")
        print(f"  exit codes {dict(sorted(codes.items()))}")
        print(f"  files outside the workspace {left_outside} (goal 0), internal errors {internal} (goal 0), "
              f"temporary files left {temps}: {'met' if left_outside == internal == 0 else 'MISSED'}")
    finally:
        stop.set()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
