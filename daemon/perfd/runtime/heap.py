"""Keeping the cyclic garbage collector's pauses short in a long-lived process.

A full (generation 2) collection walks every tracked object. In a daemon that
has imported pygls, lsprotocol and cattrs, that is tens of thousands of
functions, classes and dicts that will live as long as the process, and it
took 25-50 ms: a pause that lands on whichever request happens to allocate
at that moment (measured in tests/bench/bench_lsp.py, where it made codeLens
p95 on a 10,000-line plan 35-40 ms against a p50 of 2 ms).

settle() collects once, then freezes everything still alive into the
permanent generation, which collections skip; refcounting still frees those
objects when they go. Call it when the set of long-lived objects has grown:
after start-up, and after a lazy import of a heavy module.
"""

from __future__ import annotations

import gc
import sys

_settled_modules = 0


def settle() -> None:
    """Collect, then move every object alive now out of the collector's sight."""
    global _settled_modules
    gc.collect()
    gc.freeze()
    _settled_modules = len(sys.modules)


def settle_if_grown() -> bool:
    """settle() if modules were imported since the last time (cheap to call often)."""
    if len(sys.modules) == _settled_modules:
        return False
    settle()
    return True
