"""Unit tests on the one transport seam (httpx.MockTransport): parsing and edge cases."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llm_helpers import (
    STREAM_BODY,
    URL,
    Chunks,
    Recorder,
    client_for,
    completion_body,
    delta,
    make_config,
    sse,
    stream_response,
    user,
)

from perfd.llm import (
    ChatOptions,
    LLMClient,
    LLMConfigError,
    LLMHTTPError,
    LLMRequestError,
    LLMResponseError,
    LLMStreamInterrupted,
    LLMTimeout,
    cache_key,
)
from perfd.llm.retry import backoff, server_delay, status_is_retryable
from perfd.llm.sse import iter_events

# -- plain calls ------------------------------------------------------------

async def test_plain_call_sends_a_chat_completion_and_parses_the_answer() -> None:
    rec = Recorder(httpx.Response(200, json=completion_body("hello!", usage={"prompt_tokens": 7, "completion_tokens": 3})))
    env = {"MY_KEY": "sk-first"}
    async with client_for(rec, env=env, api_key_env="MY_KEY", cache=False,
                          price_prompt_per_1k=1.0, price_completion_per_1k=2.0) as llm:
        result = await llm.complete(user("hi"), ChatOptions(max_tokens=50, stop=["\n\n"], seed=3))
        assert result.text == "hello!" and result.model == "served-model" and result.finish_reason == "stop"
        assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (7, 3)
        assert result.cost == pytest.approx((7 * 1.0 + 3 * 2.0) / 1000)
        assert not result.cached and result.attempts == 1
        body = rec.bodies()[0]
        assert body == {"model": "fake-model", "messages": user("hi"), "temperature": 0.0, "max_tokens": 50,
                        "stop": ["\n\n"], "seed": 3}
        assert rec.requests[0].url == URL + "/chat/completions"
        assert rec.requests[0].headers["authorization"] == "Bearer sk-first"
        # The key is read at call time: a rotated key is used at once.
        env["MY_KEY"] = "sk-rotated"
        await llm.complete(user("again"))
        assert rec.requests[1].headers["authorization"] == "Bearer sk-rotated"


async def test_no_auth_header_without_api_key_env_and_clear_error_when_variable_missing() -> None:
    rec = Recorder(httpx.Response(200, json=completion_body("ok")))
    async with client_for(rec, cache=False) as llm:
        await llm.complete(user("x"))
        assert "authorization" not in rec.requests[0].headers
    async with client_for(rec, cache=False, api_key_env="NOT_SET_ANYWHERE") as llm:
        with pytest.raises(LLMConfigError, match="NOT_SET_ANYWHERE"):
            await llm.complete(user("x"))
    assert len(rec.requests) == 1  # nothing was sent without the key


async def test_missing_usage_falls_back_to_the_estimate() -> None:
    rec = Recorder(httpx.Response(200, json=completion_body("abcdefgh")))
    async with client_for(rec, cache=False) as llm:
        result = await llm.complete(user("x" * 40), ChatOptions(max_tokens=100))
    assert result.usage.completion_tokens == 2  # 8 chars / 4
    assert result.usage.prompt_tokens >= 10  # 40 chars / 4, plus the per-message allowance


@pytest.mark.parametrize(
    ("response", "needle"),
    [
        (httpx.Response(200, content=b"<html>proxy error</html>"), "did not return a chat completion"),
        (httpx.Response(200, json={"choices": []}), "did not return a chat completion"),
        (httpx.Response(200, json={"error": {"message": "model overloaded"}}), "model overloaded"),
    ],
)
async def test_malformed_answers_raise_response_errors(response: httpx.Response, needle: str) -> None:
    async with client_for(Recorder(response), cache=False) as llm:
        with pytest.raises(LLMResponseError, match=needle):
            await llm.complete(user("x"))


async def test_messages_and_options_are_validated_before_sending() -> None:
    rec = Recorder(httpx.Response(200, json=completion_body("ok")))
    async with client_for(rec) as llm:
        for bad in ([], "hello", [{"content": "no role"}], ["not a mapping"]):
            with pytest.raises(LLMRequestError):
                await llm.complete(bad)  # type: ignore[arg-type]
        with pytest.raises(LLMRequestError, match="stream"):
            await llm.complete(user("x"), ChatOptions(extra={"stream": True}))
        with pytest.raises(LLMRequestError, match="plain JSON"):
            await llm.complete([{"role": "user", "content": object()}])
    assert rec.requests == []


async def test_token_estimate_learns_from_usage_when_chars_per_token_is_low() -> None:
    """A tokenizer that needs more tokens than chars/4 (code, CJK) makes perfd
    reserve more for the next calls, so tpm windows stay within the limit."""
    gate = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        if body["messages"][0]["content"] == "second":
            await gate.wait()
        return httpx.Response(200, json=completion_body("ok", usage={"prompt_tokens": 60, "completion_tokens": 1}))

    async with client_for(handler, cache=False, tpm=100_000) as llm:
        await llm.complete([{"role": "user", "content": "x" * 40}], ChatOptions(max_tokens=10))  # estimate 10 + 4, real 60
        assert llm.stats().window_tokens == 61
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: llm.complete([{"role": "user", "content": "second"}], ChatOptions(max_tokens=10)))
            await anyio.sleep(0.05)
            # "second" is 2 + 4 tokens by chars/4; scaled by 60/14 it reserves 26, plus max_tokens.
            assert llm.stats().window_tokens == 61 + 26 + 10
            gate.set()


# -- retries ----------------------------------------------------------------

async def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    rec = Recorder(httpx.Response(500, json={"error": {"message": "boom"}}))
    async with client_for(rec, cache=False, max_retries=2, breaker_failures=100) as llm:
        with pytest.raises(LLMHTTPError) as info:
            await llm.complete(user("x"))
        stats = llm.stats()
    assert len(rec.requests) == 3
    assert info.value.status == 500 and info.value.kind == "http_5xx" and "boom" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)
    assert stats.retries == 2 and stats.errors == {"http_5xx": 1} and stats.attempt_errors == {"http_5xx": 3}


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
async def test_transient_statuses_are_retried(status: int) -> None:
    rec = Recorder(httpx.Response(status), httpx.Response(200, json=completion_body("ok")))
    async with client_for(rec, cache=False) as llm:
        assert (await llm.complete(user("x"))).attempts == 2
    assert len(rec.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_not_retried(status: int) -> None:
    rec = Recorder(httpx.Response(status, json={"error": {"message": "nope"}}), httpx.Response(200, json=completion_body("ok")))
    async with client_for(rec, cache=False) as llm:
        with pytest.raises(LLMHTTPError, match="nope"):
            await llm.complete(user("x"))
    assert len(rec.requests) == 1


async def test_x_should_retry_overrides_the_status() -> None:
    rec = Recorder(httpx.Response(400, headers={"x-should-retry": "true"}), httpx.Response(200, json=completion_body("ok")))
    async with client_for(rec, cache=False) as llm:
        assert (await llm.complete(user("x"))).attempts == 2
    rec2 = Recorder(httpx.Response(503, headers={"x-should-retry": "false"}), httpx.Response(200, json=completion_body("ok")))
    async with client_for(rec2, cache=False) as llm:
        with pytest.raises(LLMHTTPError):
            await llm.complete(user("x"))
    assert len(rec2.requests) == 1


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("refused"), "connection"),
        (httpx.ConnectTimeout("slow connect"), "timeout"),
        (httpx.ReadTimeout("slow read"), "timeout"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), "connection"),
        (httpx.ReadError("reset"), "connection"),
    ],
)
async def test_transport_failures_are_retried(exc: Exception, kind: str) -> None:
    rec = Recorder(exc, httpx.Response(200, json=completion_body("ok")))
    async with client_for(rec, cache=False) as llm:
        assert (await llm.complete(user("x"))).attempts == 2
        assert llm.stats().attempt_errors == {kind: 1}


class Jitter(random.Random):
    """Records every backoff draw (full jitter draws uniform(0, ceiling)) and returns the ceiling."""

    def __init__(self) -> None:
        super().__init__(0)
        self.draws: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.draws.append((a, b))
        return b


def client_with_jitter(handler: Any, jitter: Jitter, **overrides: Any) -> LLMClient:
    return LLMClient(make_config(URL, history=False, cache=False, **overrides), transport=httpx.MockTransport(handler),
                     env={}, rng=jitter)


async def test_retry_after_ms_and_seconds_are_honoured() -> None:
    for headers, low in (({"retry-after-ms": "250"}, 0.25), ({"retry-after": "0.3"}, 0.3)):
        rec = Recorder(httpx.Response(429, headers=headers), httpx.Response(200, json=completion_body("ok")))
        jitter = Jitter()
        async with client_with_jitter(rec, jitter, retry_base_s=5.0, retry_max_s=5.0) as llm:
            started = time.perf_counter()
            assert (await llm.complete(user("x"))).attempts == 2
            elapsed = time.perf_counter() - started
        # the server's delay, not the backoff (up to 5 s here): no jitter was drawn; how close to the
        # delay the wall time comes is a figure of tests/bench/bench_llm_timing.py
        assert jitter.draws == [], headers
        assert low <= elapsed, (headers, elapsed)
    # the same client without a server delay does draw its backoff: the probe above can see one
    jitter = Jitter()
    rec = Recorder(httpx.Response(500), httpx.Response(200, json=completion_body("ok")))
    async with client_with_jitter(rec, jitter, retry_base_s=0.01, retry_max_s=0.01) as llm:
        assert (await llm.complete(user("x"))).attempts == 2
    assert jitter.draws == [(0.0, 0.01)]


async def test_retry_after_beyond_the_limit_fails_at_once() -> None:
    rec = Recorder(httpx.Response(429, headers={"retry-after": "3600"}), httpx.Response(200, json=completion_body("ok")))
    jitter = Jitter()
    async with client_with_jitter(rec, jitter, max_retry_after_s=10) as llm:
        with pytest.raises(LLMHTTPError, match="retry after 3600s"):
            await llm.complete(user("x"))
        assert llm.stats().retries == 0
    assert len(rec.requests) == 1 and jitter.draws == []  # no wait of any kind, no second request


def test_server_delay_parsing() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert server_delay({"retry-after": date}, now=lambda: now) == pytest.approx(7, abs=1)
    assert server_delay({"retry-after": email.utils.formatdate(now - 50, usegmt=True)}, now=lambda: now) == 0.0
    assert server_delay({"retry-after": "12"}) == 12.0
    assert server_delay({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5  # ms is more precise: it wins
    assert server_delay({"retry-after": "soon"}) is None
    assert server_delay({}) is None
    assert status_is_retryable(503, {}) and not status_is_retryable(400, {})
    assert status_is_retryable(400, {"x-should-retry": "true"}) and not status_is_retryable(500, {"x-should-retry": "false"})


@given(attempt=st.integers(0, 40))
def test_backoff_is_full_jitter_and_capped(attempt: int) -> None:
    value = backoff(attempt, base_s=0.5, max_s=8.0)
    assert 0.0 <= value <= min(8.0, 0.5 * 2**attempt)


async def test_per_request_timeout_is_enforced_and_retried_with_a_bound() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return httpx.Response(200, json=completion_body("late"))

    async with client_for(slow, cache=False, max_retries=1) as llm:
        with pytest.raises(LLMTimeout):
            await llm.complete(user("x"), ChatOptions(timeout_s=0.1))
        # two attempts, each ended by the 0.1 s timeout (the 5 s answer would have succeeded)
        assert llm.stats().attempt_errors == {"timeout": 2}


# -- streams ----------------------------------------------------------------

def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return [p for p in pieces if p]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, len(STREAM_BODY)), max_size=12), crlf=st.booleans())
def test_stream_parsing_survives_any_chunking(cuts: list[int], crlf: bool) -> None:
    body = STREAM_BODY.replace(b"\n", b"\r\n") if crlf else STREAM_BODY

    async def run() -> None:
        rec = Recorder(lambda request: stream_response(split_at(body, cuts)))
        async with client_for(rec, cache=False) as llm:
            async with llm.stream(user("x")) as s:
                deltas = [d async for d in s]
            assert "".join(deltas) == "Hello, world"
            assert s.completion is not None and s.completion.text == "Hello, world"
            assert s.completion.finish_reason == "stop"
            assert (s.completion.usage.prompt_tokens, s.completion.usage.completion_tokens) == (5, 4)
            assert rec.bodies()[0]["stream"] is True
            assert rec.bodies()[0]["stream_options"] == {"include_usage": True}

    anyio.run(run)


async def test_sse_parser_handles_multiline_data_comments_and_event_names() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in [": comment", "event: error", "data: {\"a\":", "data: 1}", "", "data: last"]:
            yield line

    events = [e async for e in iter_events(lines())]
    assert [(e.event, e.data) for e in events] == [("error", '{"a":\n1}'), ("message", "last")]


async def test_stream_tool_calls_are_merged() -> None:
    body = sse(
        delta(tool_calls=[{"index": 0, "id": "call_1", "type": "function", "function": {"name": "look", "arguments": ""}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '{"q": '}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '"x"}'}}]),
        delta(finish="tool_calls"),
        "[DONE]",
    )
    async with client_for(Recorder(lambda r: stream_response([body])), cache=False) as llm:
        async with llm.stream(user("x"), ChatOptions(tools=[{"type": "function", "function": {"name": "look"}}])) as s:
            completion = await s.read()
    assert completion.tool_calls == [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q": "x"}'}}]
    assert completion.finish_reason == "tool_calls"


async def test_stream_failure_before_the_first_token_is_retried() -> None:
    early = lambda r: stream_response([b": ping\n\n", sse(delta(""))], error_after=2)  # noqa: E731
    good = lambda r: stream_response([STREAM_BODY])  # noqa: E731
    rec = Recorder(early, good)
    async with client_for(rec, cache=False) as llm:
        async with llm.stream(user("x")) as s:
            text = "".join([d async for d in s])
    assert text == "Hello, world" and len(rec.requests) == 2 and s.completion and s.completion.attempts == 2


async def test_stream_failure_after_the_first_token_is_not_retried() -> None:
    pieces = [sse(delta("Hel")), sse(delta("lo"))]
    rec = Recorder(lambda r: stream_response(pieces, error_after=2), lambda r: stream_response([STREAM_BODY]))
    got: list[str] = []
    async with client_for(rec, cache=True) as llm:
        with pytest.raises(LLMStreamInterrupted) as info:
            async with llm.stream(user("x")) as s:
                async for d in s:
                    got.append(d)
        assert info.value.partial_text == "Hello" == "".join(got)
        assert len(rec.requests) == 1
        # An incomplete stream is never cached: the next call asks the server again.
        async with llm.stream(user("x")) as s2:
            assert "".join([d async for d in s2]) == "Hello, world"
        assert len(rec.requests) == 2


async def test_stream_that_ends_without_finishing_counts_as_broken() -> None:
    truncated = lambda r: stream_response([sse(delta("partial"))])  # noqa: E731
    async with client_for(Recorder(truncated), cache=False, max_retries=0) as llm:
        with pytest.raises(LLMStreamInterrupted):
            async with llm.stream(user("x")) as s:
                async for _ in s:
                    pass


async def test_mid_stream_error_event_before_tokens_is_retried() -> None:
    err = lambda r: stream_response([sse({"error": {"message": "engine crashed"}})])  # noqa: E731
    rec = Recorder(err, lambda r: stream_response([STREAM_BODY]))
    async with client_for(rec, cache=False) as llm:
        async with llm.stream(user("x")) as s:
            assert (await s.read()).text == "Hello, world"
    assert len(rec.requests) == 2


async def test_server_that_ignores_stream_true_still_works() -> None:
    rec = Recorder(httpx.Response(200, json=completion_body("one piece")))
    async with client_for(rec, cache=False) as llm:
        async with llm.stream(user("x")) as s:
            assert [d async for d in s] == ["one piece"]


async def test_stream_error_status_is_raised_with_the_server_message() -> None:
    rec = Recorder(httpx.Response(404, json={"error": {"message": "model not found"}}))
    async with client_for(rec, cache=False) as llm:
        with pytest.raises(LLMHTTPError, match="model not found"):
            async with llm.stream(user("x")) as s:
                async for _ in s:
                    pass


async def test_iterating_a_stream_outside_async_with_is_refused() -> None:
    async with client_for(Recorder(httpx.Response(200, json=completion_body("x")))) as llm:
        with pytest.raises(Exception, match="async with"):
            async for _ in llm.stream(user("x")):
                pass


async def test_leaving_a_stream_early_closes_the_response() -> None:
    streams: list[Chunks] = []

    def answer(request: httpx.Request) -> httpx.Response:
        streams.append(Chunks([STREAM_BODY[:40], STREAM_BODY[40:]]))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=streams[-1])

    async with client_for(answer, cache=False) as llm:
        async with llm.stream(user("x")) as s:
            async for _ in s:
                break
        assert streams[0].closed
        assert llm.stats().in_flight == 0


# -- cache keys and cacheability ---------------------------------------------

def test_cache_key_is_canonical_and_covers_every_input() -> None:
    msgs = [{"role": "user", "content": "hi", "name": "a"}]
    base = cache_key(base_url=URL, model="m", messages=msgs, params={"temperature": 0.0, "tools": [{"b": 1, "a": 2}]})
    same = cache_key(base_url=URL + "/", model="m", messages=[{"name": "a", "content": "hi", "role": "user"}],
                     params={"tools": [{"a": 2, "b": 1}], "temperature": 0.0})
    assert base == same and len(base) == 64
    variants = [
        dict(base_url="http://other/v1", model="m", messages=msgs, params={"temperature": 0.0, "tools": [{"b": 1, "a": 2}]}),
        dict(base_url=URL, model="m2", messages=msgs, params={"temperature": 0.0, "tools": [{"b": 1, "a": 2}]}),
        dict(base_url=URL, model="m", messages=[{**msgs[0], "content": "hi!"}], params={"temperature": 0.0, "tools": [{"b": 1, "a": 2}]}),
        dict(base_url=URL, model="m", messages=msgs, params={"temperature": 0.5, "tools": [{"b": 1, "a": 2}]}),
        dict(base_url=URL, model="m", messages=msgs, params={"temperature": 0.0, "tools": [{"b": 1, "a": 3}]}),
        dict(base_url=URL, model="m", messages=msgs, params={"temperature": 0.0, "tools": [{"b": 1, "a": 2}], "seed": 1}),
    ]
    assert len({cache_key(**v) for v in variants} | {base}) == len(variants) + 1  # type: ignore[arg-type]


async def test_cacheability_rules_and_bypass() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json=completion_body(f"answer {len(rec.requests)}")))
    async with client_for(rec) as llm:
        a = await llm.complete(user("q"), ChatOptions(temperature=0))  # int 0 and float 0.0 are the same key
        b = await llm.complete(user("q"), ChatOptions(temperature=0.0))
        assert b.cached and b.text == a.text and len(rec.requests) == 1
        assert not (await llm.complete(user("q"), ChatOptions(use_cache=False))).cached
        assert len(rec.requests) == 2
        # temperature > 0 is not cached by default (answers are meant to vary)
        await llm.complete(user("q"), ChatOptions(temperature=0.7))
        assert not (await llm.complete(user("q"), ChatOptions(temperature=0.7))).cached
        # the key changes with any sampling parameter
        assert not (await llm.complete(user("q"), ChatOptions(max_tokens=5))).cached
        stats = llm.stats()
        assert stats.cache_hits == 1 and stats.cache_misses == 2
    async with client_for(rec, cache_temperature_above_zero=True, cache_path=None) as llm:
        await llm.complete(user("warm"), ChatOptions(temperature=0.7))
        assert (await llm.complete(user("warm"), ChatOptions(temperature=0.7))).cached


async def test_use_cache_false_does_not_read_the_cache_and_its_answer_replaces_the_cached_one() -> None:
    # (`perfd run --no-cache` refreshes a stale answer: the next cached call gets the new one)
    rec = Recorder(lambda r: httpx.Response(200, json=completion_body(f"answer {len(rec.requests)}")))
    async with client_for(rec) as llm:
        first = await llm.complete(user("q"))
        fresh = await llm.complete(user("q"), ChatOptions(use_cache=False))
        assert not fresh.cached and fresh.text != first.text and len(rec.requests) == 2
        again = await llm.complete(user("q"))
        assert again.cached and again.text == fresh.text
        assert len(rec.requests) == 2
