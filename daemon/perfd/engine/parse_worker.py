"""A parse worker's entry point (`python -m perfd.engine.parse_worker`): see perfd.engine.parse_pool."""

from __future__ import annotations

import sys

from perfd.engine.parse_pool import serve

if __name__ == "__main__":
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
