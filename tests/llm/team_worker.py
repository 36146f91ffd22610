"""One daemon of a team, as a separate process: its own workspace (perfd.toml) and state folder.

    python team_worker.py ROOT CONCURRENCY DURATION_S START_AT TAG

builds the model client exactly as the daemon does (client_from_workspace),
sends distinct prompts with CONCURRENCY callers from wall-clock START_AT for
DURATION_S, and prints one JSON line: calls, errors by kind and its stats.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import anyio
import msgspec

from perfd.llm import ChatOptions, LLMError, client_from_workspace


async def main(root: str, concurrency: int, duration_s: float, start_at: float, tag: str) -> None:
    client = client_from_workspace(root)
    assert client is not None
    calls = 0
    errors: Counter[str] = Counter()
    await anyio.sleep(max(start_at - time.time(), 0.0))
    deadline = time.monotonic() + duration_s

    async def caller(n: int) -> None:
        nonlocal calls
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                with anyio.fail_after(max(deadline - time.monotonic(), 0.001)):
                    await client.complete([{"role": "user", "content": f"{tag}-{n}-{i} " + "x" * 40}],
                                          ChatOptions(use_cache=False, max_tokens=20))
                calls += 1
            except TimeoutError:
                return
            except LLMError as exc:
                errors[exc.kind] += 1

    async with client:
        async with anyio.create_task_group() as tg:
            for n in range(concurrency):
                tg.start_soon(caller, n)
        stats = client.stats()
    print(msgspec.json.encode({"calls": calls, "errors": dict(errors), "stats": stats}).decode(), flush=True)


if __name__ == "__main__":
    root, conc, dur, start, tag = sys.argv[1:6]
    anyio.run(main, root, int(conc), float(dur), float(start), tag)
