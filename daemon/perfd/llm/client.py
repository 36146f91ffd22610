"""The provider client: one OpenAI-compatible chat-completions endpoint.

Every call goes through the same layers, outermost first:

    response cache -> retry loop -> circuit breaker -> concurrency slot
    -> gate (rate limits, budget) -> pooled HTTP request (one httpx.AsyncClient)

With a `[team]` table (`team=`), the gate and a third cache level live in the
team's Redis (team.py); without one, or while Redis is down with fail =
"open", they are this process's own.

This module is the call: its request and the plain answer. What every call
records (counters, the response cache, the history) is the call recorder
(recorder.py), and everything from the circuit breaker down is one attempt
(attempt.py), both the same for plain and streamed calls (stream.py).

The API key is read from the environment at call time and only ever placed
in the Authorization header; text from the server is scrubbed of it before
it reaches an error, a log line or the history (apikey.py).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import httpx
import orjson

from .apikey import ApiKey
from .attempt import AttemptFailed, Attempts
from .cache import ResponseCache, cache_key
from .config import CACHE_FILE, HISTORY_FILE, LLMConfig, with_listed_prices
from .errors import LLMError, LLMRequestError
from .gate import LocalGate
from .history import History
from .providers import RESERVED, wire_for
from .parsing import check_messages, content_chars, read_completion
from .ratelimit import estimate_tokens
from .recorder import CallRecorder
from .stats import Counters, LLMStats, TeamStats
from .stream import ChatStream, falls_back
from .team_config import TeamConfig, namespace_for
from .types import ChatOptions, Completion, JSONObject, Message, PreparedRequest, RequestPreview

if TYPE_CHECKING:
    from .team import TeamGate, TeamLink

# Tokens a chat format adds around each message (role, separators): a few on
# every server; counting them keeps the tpm estimate on the safe side.
_PER_MESSAGE_TOKENS = 4
_DEFAULTS = ChatOptions()
_SECRET_WORDS = ("auth", "key", "token", "secret", "cookie", "password", "session")


def _looks_secret(header: str) -> bool:
    name = header.lower()
    return any(word in name for word in _SECRET_WORDS)


class LLMClient:
    """Calls one provider; create one per provider and share it.

    `transport` replaces the network (an httpx.MockTransport in unit tests);
    `env` is where the API key is read at call time (default os.environ);
    `state_dir` holds the cache and history files unless the config names
    them (default perfd.paths.state_dir()); `team` shares limits, cache,
    breaker and budget with other daemons through Redis.
    """

    def __init__(
        self,
        config: LLMConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        env: Mapping[str, str] | None = None,
        state_dir: str | None = None,
        rng: random.Random | None = None,
        team: TeamConfig | None = None,
        notice: str = "",
        name: str = "",
        fallbacks: Sequence[LLMClient] = (),
    ) -> None:
        config = with_listed_prices(config)  # the price table's, where the settings set none
        self.config = config
        self.name = name  # of its [models.NAME] table; "" for [llm]
        # The clients of [llm] fallback, in order: each serves a call this one failed before any byte.
        self.fallbacks = list(fallbacks)
        # One line for the user when settings were left out (the workspace's that wait for
        # `perfd trust`): a run prints it, so a model used instead of another is never silent.
        self.notice = notice
        environ = env if env is not None else os.environ
        self._wire = wire_for(config)
        self._key = ApiKey(config.api_key_env, environ, header=self._wire.key_header, prefix=self._wire.key_prefix,
                           secret_headers=config.headers_env)
        self._counters = Counters()
        self._attempts = Attempts(config, key=self._key, counters=self._counters, transport=transport, rng=rng)
        base = state_dir
        if (config.cache and config.cache_path is None) or (config.history and config.history_path is None):
            if base is None:
                from perfd.paths import state_dir as default_state_dir

                base = default_state_dir()
        self._team: TeamGate | None = None
        self._link: TeamLink | None = None
        shared = None
        if team is not None:
            from .team import SharedCache, TeamGate, TeamLink

            self._link = TeamLink(team, namespace=namespace_for(team, base_url=config.base_url, model=config.model),
                                  env=environ)
            local = self._attempts.gate
            assert isinstance(local, LocalGate)
            self._team = TeamGate(config, self._link, local)
            self._attempts.gate = self._team
            if config.cache:
                shared = SharedCache(self._link, ttl_s=team.cache_ttl_s, compress_min_bytes=team.compress_min_bytes,
                                     max_bytes=config.cache_max_answer_bytes)
        self._cache: ResponseCache | None = None
        if config.cache:
            self._cache = ResponseCache(
                config.cache_path or os.path.join(base or "", CACHE_FILE),
                ttl_s=config.cache_ttl_s,
                memory_entries=config.cache_memory_entries,
                max_entries=config.cache_max_entries,
                max_answer_bytes=config.cache_max_answer_bytes,
                shared=shared,
            )
        self._history: History | None = None
        if config.history:
            self._history = History(
                config.history_path or os.path.join(base or "", HISTORY_FILE),
                max_rows=config.history_max_rows,
            )
        local_gate = self._attempts.gate
        if self._history is not None and isinstance(local_gate, LocalGate) and local_gate.budget is not None:
            # The day's spending from the history's ledger: every process of the user, every workspace.
            local_gate.budget.ledger = self._history
        self._recorder = CallRecorder(config, self._counters, cache=self._cache, history=self._history,
                                      redact=self._key.redact)
        self._closed = False

    def __repr__(self) -> str:
        return f"LLMClient(base_url={self.config.base_url!r}, model={self.config.model!r})"

    @property
    def history(self) -> History | None:
        """The call history (for `perfd stats --history`), None when disabled."""
        return self._history

    @property
    def cache(self) -> ResponseCache | None:
        return self._cache

    # -- public calls ------------------------------------------------------

    async def complete(self, messages: Sequence[Message], options: ChatOptions | None = None, *,
                       fallbacks: Sequence[LLMClient] | None = None) -> Completion:
        """Ask the model and wait for the whole answer (options: see ChatOptions).

        `fallbacks`: the models that serve the call if this one fails before any answer (default: [llm] fallback's)."""
        fallbacks = self.fallbacks if fallbacks is None else fallbacks
        request = self._prepare(messages, _DEFAULTS if options is None else options, stream=False)
        call = self._recorder.begin(request, stream=False)
        try:
            hit = await call.lookup()
            if hit is not None:
                result = call.hit(hit)
                call.replayed(result)
                return result
            result = await self._call_plain(request, call.started)
            call.finished(result)
            return result
        except LLMError as exc:
            call.failed(exc)
            if not fallbacks or not falls_back(exc):
                raise
        except BaseException as exc:
            call.failed(exc)
            raise
        # The call failed before any answer: the next model serves it, the rest of the list behind it.
        first, *rest = fallbacks
        result = await first.complete(messages, options, fallbacks=rest)
        self._counters.served_by_fallback[first.config.model] += 1
        return result

    def check_key(self) -> None:
        """LLMConfigError when `api_key_env` names a variable that is unset or empty: a configuration
        error to report before anything is sent, not a failed call."""
        self._key.headers()

    async def cached(self, messages: Sequence[Message], options: ChatOptions | None = None) -> bool:
        """Whether the response cache holds this call's answer now (counts nothing; a run says
        "from the cache" rather than "sending" before it starts)."""
        request = self._prepare(messages, options or ChatOptions(), stream=True)
        if request.key is None or self._cache is None or not request.options.use_cache:
            return False
        return await self._cache.get(request.key, count=False) is not None

    def stream(self, messages: Sequence[Message], options: ChatOptions | None = None, *,
               fallbacks: Sequence[LLMClient] | None = None) -> ChatStream:
        """Ask the model and receive the answer as it is generated:

            async with client.stream(messages) as s:
                async for delta in s:
                    ...
            s.completion  # the whole answer, usage included

        Failures before the first token are retried; after it they raise
        LLMStreamInterrupted. Leaving the block early (break, exception,
        cancellation) closes the response and frees its connection. A cached
        answer is replayed chunk by chunk. Options: see ChatOptions; their
        `timeout_s` bounds the wait for the response and for each chunk.
        """
        request = self._prepare(messages, _DEFAULTS if options is None else options, stream=True)
        fallbacks = self.fallbacks if fallbacks is None else fallbacks
        fallback = None
        if fallbacks:
            first, *rest = fallbacks

            def fallback() -> ChatStream:
                return first.stream(messages, options, fallbacks=rest)

        return ChatStream(request, self._recorder, self._attempts, fallback=fallback)

    def preview(self, messages: Sequence[Message], options: ChatOptions | None = None, *,
                stream: bool = True) -> RequestPreview:
        """The HTTP request `stream` (or `complete`, with stream=False) would send for these messages, built
        as they build it and not sent: nothing counted, cached or recorded, no secret read (the API key and
        `headers_env` values are named, not shown; a `headers` value whose name looks secret is hidden)."""
        request = self._prepare(messages, _DEFAULTS if options is None else options, stream=stream)
        named = self._key.masked_headers()
        headers = {**named, "accept": "text/event-stream"} if stream else named
        built = self._attempts.http.build_request("POST", self.config.chat_url, content=request.body, headers=headers)
        ours = {name.lower() for name in named}
        shown = {name: value if name in ours or not _looks_secret(name) else "[hidden]"
                 for name, value in built.headers.items()}
        url = str(built.url)
        if built.url.userinfo:  # credentials in base_url: shown as hidden, not as they are
            url = url.replace(built.url.userinfo.decode("ascii") + "@", "[hidden]@", 1)
        return RequestPreview(method=built.method, url=url, headers=shown, body=request.payload)

    def stats(self) -> LLMStats:
        c = self._counters
        p50, p95, p99 = c.percentiles()
        window_requests, window_tokens = self._attempts.limiter.usage()
        return LLMStats(
            base_url=self.config.base_url,
            model=self.config.model,
            calls=c.calls,
            requests=c.requests,
            retries=c.retries,
            errors=dict(c.errors),
            attempt_errors=dict(c.attempt_errors),
            rate_limited=c.rate_limited,
            rate_limit_wait_s=round(self._attempts.limiter.waited_s, 6),
            window_requests=window_requests,
            window_tokens=window_tokens,
            breaker_state=self._attempts.breaker.state,
            breaker_opened=self._attempts.breaker.times_opened,
            cache_hits=c.cache_hits,
            cache_misses=c.cache_misses,
            cache_rebuilt=self._cache.rebuilt if self._cache else 0,
            tokens_saved=c.tokens_saved,
            cost_saved=c.cost_saved,
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            cost=c.cost,
            connections_opened=c.connections_opened,
            in_flight=c.in_flight,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
            cache_hits_by_level=dict(self._cache.hits_by_level) if self._cache else {},
            budget_used_usd=self._budget_used(),
            priced=self.config.priced,
            served_by_fallback=dict(c.served_by_fallback),
            team=self._team_stats(),
        )

    def _budget_used(self) -> float | None:
        if not self.config.has_budget:
            return None
        if self._team is not None and self._team.link.state != "down":
            return round(self._team.spent_usd, 6)
        local = self._attempts.gate if self._team is None else self._team.local
        budget = getattr(local, "budget", None)
        return round(budget.spent, 6) if budget is not None else None

    def _team_stats(self) -> TeamStats | None:
        if self._team is None:
            return None
        shared = self._cache.shared if self._cache is not None else None
        hits = getattr(shared, "hits", 0)
        misses = getattr(shared, "misses", 0)
        return self._team.stats(cache_hits=hits, cache_misses=misses, cache_rejected=getattr(shared, "rejected", 0))

    @property
    def team(self) -> TeamGate | None:
        """The team's shared gate, None without [team]."""
        return self._team

    async def refresh_team(self) -> None:
        """Read the team's current window, peers and spending from Redis (for `perfd stats`)."""
        if self._team is not None:
            await self._team.refresh()

    async def flush(self) -> None:
        """Wait until cache and history writes queued so far are on disk."""
        for other in self.fallbacks:
            await other.flush()
        if self._cache is not None:
            await self._cache.flush()
        if self._history is not None:
            await self._history.flush()

    async def aclose(self) -> None:
        """Close the connection pool, then commit and close cache and history."""
        if self._closed:
            return
        self._closed = True
        for other in self.fallbacks:
            await other.aclose()
        await self._attempts.aclose()
        if self._cache is not None and self._cache.shared is not None:
            with anyio.move_on_after(2.0):  # answers other daemons could reuse, if Redis takes them now
                await self._cache.shared.flush()
        if self._link is not None:
            await self._link.aclose()
        with anyio.CancelScope(shield=True):  # losing queued history on cancel is worse
            for store in (self._cache, self._history):
                if store is not None:
                    await anyio.to_thread.run_sync(store.close)

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- preparing ---------------------------------------------------------

    def _prepare(self, messages: Sequence[Message], options: ChatOptions, *, stream: bool) -> PreparedRequest:
        if self._closed:
            raise LLMError("the LLM client is closed", kind="closed")
        cfg = self.config
        msgs = check_messages(messages)
        temperature = cfg.temperature if options.temperature is None else options.temperature
        max_tokens = cfg.max_tokens if options.max_tokens is None else options.max_tokens
        if max_tokens is not None and max_tokens < 1:
            raise LLMRequestError(f"max_tokens must be >= 1, got {max_tokens}")
        if options.timeout_s is not None and not options.timeout_s > 0:
            raise LLMRequestError(f"timeout_s must be > 0, got {options.timeout_s}")
        # Sampling parameters as sent; numbers normalised so 0 and 0.0 key alike.
        params: JSONObject = {}
        if temperature is not None:
            params["temperature"] = float(temperature)
        if max_tokens is not None:
            params["max_tokens"] = int(max_tokens)
        if options.top_p is not None:
            params["top_p"] = float(options.top_p)
        if options.stop is not None:
            params["stop"] = options.stop if isinstance(options.stop, str) else list(options.stop)
        if options.seed is not None:
            params["seed"] = int(options.seed)
        if options.tools is not None:
            params["tools"] = [dict(t) for t in options.tools]
        if options.tool_choice is not None:
            choice = options.tool_choice
            params["tool_choice"] = choice if isinstance(choice, str) else dict(choice)
        if options.response_format is not None:
            params["response_format"] = dict(options.response_format)
        for name, value in (options.extra or {}).items():
            if name in RESERVED:
                raise LLMRequestError(f"extra may not set {name!r}: perfd controls it")
            params[name] = value

        cacheable = (  # keyed even with use_cache=False: the answer replaces the cached one
            self._cache is not None
            and (cfg.cache_temperature_above_zero or params.get("temperature") == 0.0)
        )
        # The URL keys Azure's deployment and tells protocols apart; OpenAI's keys stay as they were.
        where = cfg.base_url if cfg.provider == "openai" else cfg.chat_url
        key = cache_key(base_url=where, model=cfg.model, messages=msgs, params=params) if cacheable else None

        payload = self._wire.payload(cfg, msgs, params, stream=stream)

        chars = sum(content_chars(m.get("content")) for m in msgs)
        if options.tools is not None:
            chars += len(orjson.dumps(params["tools"]))
        completion = max_tokens if max_tokens is not None else cfg.completion_tokens_estimate
        prompt = estimate_tokens(chars) + _PER_MESSAGE_TOKENS * len(msgs)
        tokens = self._attempts.tokens_for(prompt, completion)
        return PreparedRequest(
            payload=payload, body=orjson.dumps(payload), key=key, tokens=tokens, prompt_estimate=prompt,
            completion_reserved=completion, timeout_s=options.timeout_s or cfg.timeout_s, options=options,
        )

    # -- the plain call ----------------------------------------------------

    async def _call_plain(self, request: PreparedRequest, started: float) -> Completion:
        number = 0
        while True:
            number += 1
            try:
                async with self._attempts.attempt(request, number) as attempt:
                    response = await attempt.send(stream=False)
                    result = read_completion(response.content, request, self.config, self._key.redact,
                                             started=started, attempts=number)
                    attempt.succeeded(result.usage)
                    return result
            except AttemptFailed as failed:
                await self._attempts.retry_or_raise(failed, number, deadline=request.deadline,
                                                    on_wait=request.options.on_wait)

