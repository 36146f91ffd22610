"""The one attempt wrapper (perfd.llm.attempt): plain and streamed calls pass the same layers.

Each rule is checked on both paths (`mode`) through the public calls on the
MockTransport seam, then on `Attempts.attempt` itself.
"""

from __future__ import annotations

import time

import anyio
import httpx
import orjson
import pytest
from llm_helpers import STREAM_BODY, URL, Recorder, client_for, completion_body, make_config, stream_response, user

from perfd.llm import ChatOptions, Completion, LLMCircuitOpen, LLMClient, LLMError, LLMHTTPError, Usage
from perfd.llm.apikey import ApiKey
from perfd.llm.attempt import AttemptFailed, Attempts
from perfd.llm.errors import LLMResponseError
from perfd.llm.parsing import BadAnswer
from perfd.llm.stats import Counters
from perfd.llm.types import PreparedRequest

MODES = ["plain", "stream"]
TEXT = "Hello, world"  # what both good answers say, with usage 5 + 4 tokens


def ok(request: httpx.Request) -> httpx.Response:
    """A good answer in the shape the request asked for."""
    if orjson.loads(request.content).get("stream"):
        return stream_response([STREAM_BODY])
    return httpx.Response(200, json=completion_body(TEXT, usage={"prompt_tokens": 5, "completion_tokens": 4}))


async def ask(llm: LLMClient, mode: str, options: ChatOptions | None = None) -> Completion:
    if mode == "plain":
        return await llm.complete(user("x"), options)
    async with llm.stream(user("x"), options) as s:
        return await s.read()


def failing(kind: str, mode: str) -> httpx.Response | Exception:
    """A fresh answer of `kind` that fails an attempt, as the `mode` path would receive it."""
    if kind == "status_500":
        return httpx.Response(500, json={"error": {"message": "boom"}})
    if kind == "status_429":
        return httpx.Response(429)
    if kind == "status_400":
        return httpx.Response(400, json={"error": {"message": "bad"}})
    if kind == "connect":
        return httpx.ConnectError("refused")
    if kind == "not_a_completion":  # on a stream: a server that ignored stream=true
        return httpx.Response(200, content=b"<html>proxy error</html>")
    assert kind == "bad_event"
    return stream_response([b"data: {oops\n\n"]) if mode == "stream" else httpx.Response(200, content=b"{")


FAILURES = ["bad_event", "connect", "not_a_completion", "status_400", "status_429", "status_500"]


# -- the breaker --------------------------------------------------------------------


async def test_an_open_breaker_refuses_plain_and_streamed_calls_before_a_slot_or_a_reservation() -> None:
    rec = Recorder(httpx.Response(500), ok)
    async with client_for(rec, cache=False, max_retries=0, breaker_failures=1, breaker_cooldown_s=60, rpm=100) as llm:
        with pytest.raises(LLMHTTPError):
            await ask(llm, "stream")  # a failed stream opens the breaker for plain calls too
        before = llm.stats()
        assert before.breaker_state == "open"
        for mode in MODES:
            with pytest.raises(LLMCircuitOpen):
                await ask(llm, mode)
        after = llm.stats()
    assert len(rec.requests) == 1
    assert after.requests == before.requests == 1 and after.in_flight == 0
    assert after.window_requests == before.window_requests == 1  # nothing reserved for the refused calls
    assert after.errors == {"http_5xx": 1, "circuit_open": 2}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("failure", "opens"),
    [("status_500", True), ("connect", True), ("not_a_completion", True), ("bad_event", True),
     ("status_429", False), ("status_400", False)],
)
async def test_each_failure_tells_the_breaker_the_same_on_both_paths(mode: str, failure: str, opens: bool) -> None:
    rec = Recorder(failing(failure, mode), ok)
    async with client_for(rec, cache=False, max_retries=0, breaker_failures=1, breaker_cooldown_s=60) as llm:
        with pytest.raises(LLMError):
            await ask(llm, mode)
        stats = llm.stats()
    assert stats.breaker_state == ("open" if opens else "closed")
    assert sum(stats.attempt_errors.values()) == 1  # every failed attempt is counted, once


# -- slots and reservations -----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("failure", FAILURES)
async def test_a_failed_attempt_gives_back_its_slot_and_its_reservation(mode: str, failure: str) -> None:
    # One slot and one request per short window: a slot or an unsettled
    # reservation kept by the failed attempt would make the next call wait forever.
    rec = Recorder(failing(failure, mode), ok)
    async with client_for(rec, cache=False, max_retries=0, breaker_failures=100,
                          max_concurrency=1, rpm=1, window_s=0.2) as llm:
        with pytest.raises(LLMError):
            await ask(llm, mode)
        assert llm.stats().in_flight == 0
        with anyio.fail_after(3):
            assert (await ask(llm, mode)).text == TEXT


@pytest.mark.parametrize("mode", MODES)
async def test_a_good_answer_charges_the_tokens_the_server_reported(mode: str) -> None:
    async with client_for(Recorder(ok), cache=False, tpm=100_000) as llm:
        completion = await ask(llm, mode, ChatOptions(max_tokens=500))
        assert completion.usage == Usage(prompt_tokens=5, completion_tokens=4)
        assert llm.stats().window_tokens == 9  # not the estimate (prompt + 500) reserved up front


@pytest.mark.parametrize("how", ["plain_cancelled", "stream_cancelled", "stream_left"])
async def test_an_attempt_cut_short_frees_everything_and_says_nothing_about_health(how: str) -> None:
    mode = how.split("_")[0]
    sent = anyio.Event()
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1 and how != "stream_left":
            sent.set()
            await anyio.sleep(30)
        return ok(request)

    async with client_for(handler, cache=False, breaker_failures=1, max_concurrency=1, rpm=1, window_s=0.2) as llm:
        if how == "stream_left":
            async with llm.stream(user("x")) as s:
                async for _ in s:
                    break
        else:
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, llm, mode)
                await sent.wait()
                assert llm.stats().in_flight == 1
                tg.cancel_scope.cancel()
        stats = llm.stats()
        assert stats.in_flight == 0 and stats.breaker_state == "closed" and stats.attempt_errors == {}
        with anyio.fail_after(3):
            assert (await ask(llm, mode)).text == TEXT


# -- classification and retries -------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_transport_errors_are_classified_retried_and_redacted_on_both_paths(mode: str) -> None:
    secret = "sk-attempt-secret"
    env = {"KEY": secret}
    rec = Recorder(httpx.ConnectError(f"refused {secret}"), ok)
    async with client_for(rec, env=env, api_key_env="KEY", cache=False) as llm:
        completion = await ask(llm, mode)
        stats = llm.stats()
    assert completion.attempts == 2 and stats.retries == 1 and stats.attempt_errors == {"connection": 1}
    assert [r.headers["authorization"] for r in rec.requests] == [f"Bearer {secret}"] * 2

    rec = Recorder(httpx.ConnectError(f"refused {secret}"))
    async with client_for(rec, env=env, api_key_env="KEY", cache=False, max_retries=0) as llm:
        with pytest.raises(LLMError) as info:
            await ask(llm, mode)
    assert info.value.kind == "connection" and "[redacted]" in str(info.value) and secret not in str(info.value)


@pytest.mark.parametrize("mode", MODES)
async def test_retry_after_on_429_is_honoured_on_both_paths(mode: str) -> None:
    rec = Recorder(httpx.Response(429, headers={"retry-after": "0.3"}), ok)
    async with client_for(rec, cache=False, retry_base_s=5.0, retry_max_s=5.0) as llm:
        started = time.perf_counter()
        completion = await ask(llm, mode)
        elapsed = time.perf_counter() - started
        stats = llm.stats()
    assert completion.attempts == 2 and stats.rate_limited == 1
    assert 0.3 <= elapsed < 1.5  # the server's wait, not a backoff of up to 5 s


# -- the wrapper itself -----------------------------------------------------------------


def prepared(tokens: int = 10) -> PreparedRequest:
    body = orjson.dumps({"model": "fake-model", "messages": user("x")})
    return PreparedRequest(payload={}, body=body, key=None, tokens=tokens, prompt_estimate=tokens - 4,
                           completion_reserved=4, timeout_s=5.0, options=ChatOptions())


async def test_the_wrapper_classifies_what_its_block_raises_and_settles_every_attempt() -> None:
    counters = Counters()
    attempts = Attempts(make_config(URL, breaker_failures=100), key=ApiKey(None, {}), counters=counters,
                        transport=httpx.MockTransport(ok))
    request = prepared()
    try:
        with pytest.raises(AttemptFailed) as info:
            async with attempts.attempt(request, 1):
                raise httpx.ReadError("reset")
        assert info.value.retryable and info.value.error.kind == "connection"

        with pytest.raises(AttemptFailed) as info:
            async with attempts.attempt(request, 2):
                raise BadAnswer(LLMResponseError("engine crashed", kind="stream_error"), retryable=True)
        assert info.value.retryable and info.value.error.kind == "stream_error"

        # Anything else is the caller's own and passes through, saying nothing about health.
        with pytest.raises(ValueError):
            async with attempts.attempt(request, 3):
                raise ValueError("not the provider's fault")
        assert attempts.breaker.consecutive_failures == 2

        async with attempts.attempt(request, 4) as attempt:
            response = await attempt.send(stream=False)
            assert response.json()["choices"][0]["message"]["content"] == TEXT
            attempt.succeeded(Usage(prompt_tokens=5, completion_tokens=4))
        assert attempts.breaker.consecutive_failures == 0
    finally:
        await attempts.aclose()
    assert counters.attempt_errors == {"connection": 1, "stream_error": 1}
    assert counters.requests == 4 and counters.in_flight == 0 and request.attempts == 4
    assert attempts.slots.value == attempts.config.concurrency
    # Failed attempts keep their estimate (the server may have counted them); the answered one is reconciled.
    assert attempts.limiter.usage() == (4, 3 * 10 + 9)


async def test_an_error_status_raises_from_send_with_its_retry_rule() -> None:
    answer = httpx.Response(503, headers={"retry-after": "2"}, json={"error": {"message": "overloaded"}})
    attempts = Attempts(make_config(URL), key=ApiKey(None, {}), counters=Counters(),
                        transport=httpx.MockTransport(lambda r: answer))
    try:
        with pytest.raises(AttemptFailed) as info:
            async with attempts.attempt(prepared(), 1) as attempt:
                await attempt.send(stream=True)
                raise AssertionError("send() returned an error response")
    finally:
        await attempts.aclose()
    failed = info.value
    assert failed.retryable and failed.delay == 2.0 and failed.status == 503
    assert isinstance(failed.error, LLMHTTPError) and "overloaded" in str(failed.error)
    assert attempts.breaker.consecutive_failures == 1
