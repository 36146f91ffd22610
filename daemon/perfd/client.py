"""The `perfd` command: a thin client.

This module is imported on every CLI call, so it imports nothing beyond
what the interpreter has already loaded (sys, os): see ../shared/PERF-NOTES.md.
The real work runs in perfd.commands, imported lazily.
"""

import os
import sys


def main() -> int:
    from perfd.commands import run

    out = run(sys.argv[1:], os.getcwd())
    if out.stdout:
        sys.stdout.write(out.stdout)
    if out.stderr:
        sys.stderr.write(out.stderr)
    return out.code


if __name__ == "__main__":
    sys.exit(main())
