"""The reference for freshness tests: a cold answer, worked out by a process of its own.

Reads one JSON request per line ({"root", "ask": "status" | "generate", "plan"}); for each, a new Engine
(nothing cached, no daemon, as `perfd --no-daemon` works) answers, and one JSON line goes back with the
answer reduced to what a user sees (see normal()).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec

from perfd.engine.engine import Engine


def normal(ask: str, result: Any) -> Any:
    """What a stale answer would differ in: per plan (state, next, done, total); for a prompt, its text too."""
    if ask == "status":
        return [[p["plan"], p["state"], p["next"], p["done"], p["total"]] for p in result["plans"]]
    return [result["achievement"], result["state"], result["prompt"], result["write_path"]]


def main() -> None:
    for line in sys.stdin:
        req = json.loads(line)
        eng = Engine(req["root"])
        try:
            got = eng.status() if req["ask"] == "status" else eng.generate(req["plan"], cwd=req["root"])
            out = normal(req["ask"], msgspec.to_builtins(got))
        finally:
            eng.close()
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
