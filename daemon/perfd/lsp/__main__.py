"""`python -m perfd.lsp [--root DIR]`: the language server alone in this process, over stdio."""

import argparse
import os
import sys

from perfd.engine.workspace import find_root
from perfd.lsp.server import run_stdio


def main() -> int:
    ap = argparse.ArgumentParser(prog="perfd lsp")
    ap.add_argument("--root")
    ap.add_argument("--standalone", action="store_true", help="run in-process (the default for this entry point)")
    args = ap.parse_args()
    root = args.root or find_root(os.getcwd()) or os.getcwd()
    run_stdio(os.path.abspath(root))
    return 0


sys.exit(main())
