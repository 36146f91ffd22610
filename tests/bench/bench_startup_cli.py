"""A warm call of the installed `perfd` command, whole process, against `python -c pass`.

    python tests/bench/bench_startup_cli.py [--rounds 21] [--perfd PATH] [--lines 3000]

The figure: warm `perfd generate --next @PLAN` (the installed command: the `perfd`
beside this interpreter, or --perfd) against `python -c pass` on the interpreter
its first line names, goal at most 1.3x. Each command runs right after its own
`python -c pass`, A B A B, for --rounds rounds; a command's figure is the median
of its pair ratios. For comparison, the same call as `python -m perfd` and through
the entry-point wrapper that pip before 25.0 writes for a [project.scripts] entry
(which imports `re` first). The workspace is synthetic (one plan of --lines lines);
the daemon is private to the run (own runtime and state folders), started from this
tree by the interpreter running the bench (so --perfd may be a venv without perfd's
dependencies: the thin client needs none) and stopped at the end. Bytecode caches
on, as an installed perfd has them.

A site .pth file that imports modules at every start (this machine has one that
imports certifi, hence `re` and pathlib) makes `python -c pass` slower and hides
what the wrapper's `import re` costs; the bench says so. A venv without
--system-site-packages does not read the base interpreter's .pth files:

    python -m venv /tmp/v && /tmp/v/bin/pip install --no-deps DIST.whl
    python tests/bench/bench_startup_cli.py --perfd /tmp/v/bin/perfd
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

from bench_daemon import wall  # beside this file: one way to time a whole call
from synthetic import plan_of_lines, write_workspace  # beside this file

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.normpath(os.path.join(HERE, "..", "..", "daemon"))

GOAL = 1.3
# What pip before 25.0 (distlib's template) writes for `perfd = "perfd.cli.client:main"`.
ENTRY_POINT_WRAPPER = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from perfd.cli.client import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def interpreter_of(script: str) -> list[str]:
    """The interpreter (and its options) that the script's first line names."""
    with open(script, "rb") as f:
        first = f.readline().decode("utf-8", "replace").strip()
    argv = shlex.split(first[2:]) if first.startswith("#!") else []
    if not argv or not os.path.basename(argv[0]).startswith("python"):
        raise SystemExit(f"{script}: not a script with a Python interpreter in its first line ({first[:80]!r})")
    return argv


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--perfd", help="the installed command to time (default: the perfd beside this interpreter)")
    ap.add_argument("--lines", type=int, default=3000, help="length of the synthetic plan")
    opts = ap.parse_args()
    perfd = opts.perfd or shutil.which("perfd", path=os.path.dirname(sys.executable))
    if not perfd:
        raise SystemExit(f"no perfd command beside {sys.executable}: install perfd, or pass --perfd")
    perfd = os.path.abspath(perfd)
    py = interpreter_of(perfd)
    with open(perfd, encoding="utf-8", errors="replace") as f:
        text = f.read()
    kind = ("an entry-point wrapper that imports re" if "\nimport re\n" in text else
            "an installer's entry-point wrapper" if "if __name__ ==" in text else "a plain script")

    base = tempfile.mkdtemp(prefix="pdc", dir="/tmp")
    root = os.path.realpath(os.path.join(base, "ws"))
    write_workspace(root, "SYNTH", plan_of_lines(opts.lines))
    plan = "@SYNTH"
    env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(base, "r"), PERFD_STATE_DIR=os.path.join(base, "s"),
               PYTHONPYCACHEPREFIX=os.path.join(base, "pyc"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # this machine sets it: every process would compile perfd afresh
    wrapper = os.path.join(base, "perfd-entry-point")
    with open(wrapper, "w") as f:
        f.write(ENTRY_POINT_WRAPPER.format(python=shlex.join(py)))
    os.chmod(wrapper, 0o755)
    where = subprocess.run([*py, "-c", "import perfd; print(perfd.__file__)"], env=env, capture_output=True,
                           text=True).stdout.strip()
    startup = subprocess.run([*py, "-X", "importtime", "-c", "pass"], env=env, capture_output=True, text=True).stderr
    site_imports_re = any(line.split("|")[-1].strip() == "re" for line in startup.splitlines())
    daemon_env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [TREE, env.get("PYTHONPATH")])))

    gen = ["generate", "--next", plan]
    floor = [*py, "-c", "pass"]
    cmds = {
        "perfd generate --next (installed command)": [perfd, *gen],  # the figure
        "python -m perfd generate --next": [*py, "-m", "perfd", *gen],
        "entry-point wrapper of pip < 25 (import re)": [wrapper, *gen],
    }
    times: dict[str, list[float]] = {"python -c pass": [], **{k: [] for k in cmds}}
    ratios: dict[str, list[float]] = {k: [] for k in cmds}
    try:
        started = subprocess.run([sys.executable, "-m", "perfd", "daemon", "start", "--root", root], env=daemon_env,
                                 capture_output=True, text=True, timeout=60)
        if started.returncode != 0:
            raise SystemExit(f"perfd daemon start failed: {started.stderr[:300]}")
        for argv in (floor, *cmds.values(), *cmds.values()):  # warm the daemon, the page cache, write bytecode
            wall(argv, env, root)
        for _ in range(opts.rounds):
            for k, argv in cmds.items():  # A B A B: each command right after its own python -c pass
                a = wall(floor, env, root)
                b = wall(argv, env, root)
                times["python -c pass"].append(a)
                times[k].append(b)
                ratios[k].append(b / a)
    finally:
        subprocess.run([sys.executable, "-m", "perfd", "daemon", "stop", "--root", root], env=daemon_env,
                       capture_output=True, timeout=30)
        shutil.rmtree(base, ignore_errors=True)

    print(f"perfd start-up, warm daemon · synthetic plan {plan} ({opts.lines} lines) · {opts.rounds} rounds A B A B,"
          f" medians · python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(f"installed command: {perfd} ({kind}), interpreter {shlex.join(py)}, perfd from {where}")
    if site_imports_re:
        print("note: this interpreter's start-up (a site .pth file) already imports re: python -c pass pays for it,"
              " and an import re in a wrapper costs nothing more here")
    installed = "perfd generate --next (installed command)"
    rows = [("command, whole process", "median", "ratio to python -c pass (median of pairs)", "goal", "verdict"),
            ("python -c pass", f"{statistics.median(times['python -c pass']) * 1000:.1f} ms", "1.00x", "", "")]
    for k in cmds:
        ratio = statistics.median(ratios[k])
        goal, verdict = (f"<= {GOAL}x", "met" if ratio <= GOAL else "MISSED") if k == installed else ("", "")
        rows.append((k, f"{statistics.median(times[k]) * 1000:.1f} ms", f"{ratio:.2f}x", goal, verdict))
    w = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip())
    ratio = statistics.median(ratios[installed])
    print(f"\nWarm `perfd generate --next` (the installed command, whole process) against `python -c pass`: "
          f"{ratio:.2f}x, goal at most {GOAL}x: {'met' if ratio <= GOAL else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
