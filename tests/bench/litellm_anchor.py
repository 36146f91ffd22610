"""The LiteLLM side of bench_team.py, run with the bench's own virtual environment's Python.

    python litellm_anchor.py '{"base_url": ..., "redis_port": ..., "rpm": ..., "instances": ..., ...}'

`instances` LiteLLM Routers (each its own limiter, as separate proxy replicas
would be) share one Redis and one deployment with an rpm limit
(usage-based-routing-v2, LiteLLM's Redis-backed rpm/tpm routing). Callers send
until `duration_s` has passed; a refusal by the router (its RateLimitError)
waits `backoff_s` and tries again, as a client of the proxy would. Prints one
JSON line. Only loopback addresses are used: the model cost map is the local
copy and telemetry is off.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

import litellm  # noqa: E402
from litellm import Router  # noqa: E402


async def main(args: dict) -> None:
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    routers = [
        Router(
            model_list=[{
                "model_name": "bench",
                "litellm_params": {"model": "openai/bench-model", "api_base": args["base_url"], "api_key": "x",
                                   "rpm": args["rpm"]},
            }],
            routing_strategy="usage-based-routing-v2",
            redis_host="127.0.0.1", redis_port=args["redis_port"],
            num_retries=0,
        )
        for _ in range(args["instances"])
    ]
    sent = refused = errors = 0
    await asyncio.sleep(max(args["start_at"] - time.time(), 0.0))
    deadline = time.monotonic() + args["duration_s"]

    async def caller(router: Router, n: int) -> None:
        nonlocal sent, refused, errors
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                await router.acompletion(model="bench", messages=[{"role": "user", "content": f"ll-{n}-{i}"}],
                                         max_tokens=5)
                sent += 1
            except litellm.RateLimitError:
                refused += 1
                await asyncio.sleep(args["backoff_s"])
            except Exception as exc:  # noqa: BLE001 - counted, the bench goes on
                errors += 1
                if errors <= 3:
                    print(f"litellm error: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
                await asyncio.sleep(args["backoff_s"])

    await asyncio.gather(*(caller(r, k * 100 + j) for k, r in enumerate(routers) for j in range(args["concurrency"])))
    print(json.dumps({"sent": sent, "refused": refused, "errors": errors, "version": litellm.__version__ if hasattr(litellm, "__version__") else None}))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
