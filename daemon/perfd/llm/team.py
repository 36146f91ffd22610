"""A team's daemons sharing one rate limit, answer cache, breaker and budget through Redis.

`TeamLink` is the connection (redis.asyncio with its pool): every operation
goes through `run`/`get`/`set`, which time it and turn any Redis failure into
`TeamDown`. After a failure the link is not tried again for `retry_s`, so a
dead Redis costs one timeout, not one per call.

`TeamGate` is the attempt wrapper's `Gate` held in Redis: one atomic Lua
script admits an attempt against the shared window, cooldown, breaker and
budget (team_scripts.ADMIT); one stamps it when the server has seen it, one
settles it. While Redis is down it falls back to the local gate (`fail =
"open"`, limits divided among the daemons last seen) or refuses (`"closed"`).

`SharedCache` is the response cache's level behind memory and SQLite.

The password is read from the variable `redis_password_env` names when the
connection is made; it is never logged, stored or shown (URLs are redacted).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
import secrets
import socket
import time
import zlib
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, TypeVar

import anyio
import anyio.to_thread
import msgspec

from perfd.latency import Window

from .team_scripts import ADMIT, PAUSE, SETTLE, STAMP, VIEW
from .breaker import Health
from .cache import CachedResponse
from .config import LLMConfig
from .errors import LLMBudgetExceeded, LLMCircuitOpen, LLMConfigError, LLMRequestTooLarge, LLMTeamUnavailable
from .gate import PRIORITY, LocalGate, Ticket, budget_message, estimated_cost
from .ratelimit import parse_reset
from .stats import TeamStats
from .team_config import TeamConfig, redact_url
from .types import PreparedRequest, Usage

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger("perfd.llm")

T = TypeVar("T")

_MICRO = 1_000_000  # budgets are counted in Redis as integer micro-USD
_POLL_S = 0.01  # how often a full window made only of in-flight requests is re-checked
_RAW, _ZLIB = b"\x00", b"\x01"
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CachedResponse)


class TeamDown(Exception):
    """Redis did not answer; the caller falls back or refuses."""


class TeamLink:
    """One daemon's connection to the team's Redis."""

    def __init__(self, team: TeamConfig, *, namespace: str, env: Mapping[str, str]) -> None:
        self.team = team
        self.namespace = namespace
        # One hash tag for every key of the namespace: scripts stay in one Cluster slot.
        self.prefix = f"perfd:{{{namespace}}}:"
        self.where = redact_url(team.redis_url)
        self._env = env
        self._redis: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self.state: Literal["connecting", "up", "down"] = "connecting"
        self.down_since: float | None = None  # wall clock, for stats
        self._retry_at = 0.0
        self.last_error: str | None = None
        self.errors = 0
        self.ops = 0
        self.rtt_ms = Window(2048)

    def _client(self) -> Redis:
        if self._redis is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            password: str | None = None
            name = self.team.redis_password_env
            if name is not None:
                password = self._env.get(name, "").strip() or None
                if password is None:
                    raise LLMConfigError(f"the environment variable {name} (named by [team] redis_password_env) "
                                         "is not set or empty")
            pool = BlockingConnectionPool.from_url(
                self.team.redis_url, password=password, max_connections=32, timeout=self.team.timeout_s,
                socket_timeout=self.team.timeout_s, socket_connect_timeout=self.team.timeout_s,
                retry=Retry(NoBackoff(), 0),  # one failure is an answer: fall back now, retry later
                client_name=f"perfd-{socket.gethostname()[:40]}",
            )
            self._redis = Redis(connection_pool=pool)
            for name_, body in (("admit", ADMIT), ("stamp", STAMP),
                                ("settle", SETTLE), ("pause", PAUSE),
                                ("view", VIEW)):
                self._scripts[name_] = self._redis.register_script(body)
        return self._redis

    def usable(self) -> bool:
        """Whether to ask Redis now (it is up, or its retry time has come)."""
        return self.state != "down" or time.monotonic() >= self._retry_at

    async def run(self, script: str, args: Sequence[int | str]) -> list[int]:
        """Run one of team_scripts' scripts on this namespace; each answers an integer or a list of them."""
        self._client()
        result = await self._op(self._scripts[script](keys=[self.prefix], args=list(args)))
        if isinstance(result, list):
            return [int(v) for v in result]
        return [] if result is None else [int(result)]

    async def get(self, suffix: str) -> bytes | None:
        value = await self._op(self._client().get(self.prefix + suffix))
        return value if isinstance(value, bytes) else None

    async def get_head(self, suffix: str, limit: int) -> bytes | None:
        """At most `limit` + 1 bytes of a string value (GETRANGE), so a value planted larger is never read whole;
        None when the key is missing or holds another type (another program's key: not Redis failing)."""
        from redis.exceptions import ResponseError

        redis = self._client()

        async def head() -> object:
            try:
                return await redis.getrange(self.prefix + suffix, 0, limit)
            except ResponseError:  # WRONGTYPE: Redis answered, the link is fine
                return None

        value = await self._op(head())
        return value if isinstance(value, bytes) and value else None

    async def set(self, suffix: str, value: bytes, *, ttl_s: float) -> None:
        await self._op(self._client().set(self.prefix + suffix, value, px=max(int(ttl_s * 1000), 1)))

    async def _op(self, awaitable: Awaitable[T]) -> T:
        if not self.usable():
            if isinstance(awaitable, Coroutine):
                awaitable.close()  # never awaited: say so to the coroutine
            raise TeamDown(self.last_error or "Redis is down")
        from redis.exceptions import RedisError

        started = time.perf_counter()
        try:
            value = await awaitable
        except (RedisError, OSError, TimeoutError) as exc:
            self._down(exc)
            raise TeamDown(self.last_error) from None
        self.ops += 1
        self.rtt_ms.add((time.perf_counter() - started) * 1000.0)
        if self.state != "up":
            if self.state == "down":
                log.warning("team Redis %s is reachable again; shared limits and cache resumed", self.where)
            self.state, self.down_since, self.last_error = "up", None, None
        return value

    def _down(self, exc: BaseException) -> None:
        self.errors += 1
        message = self.redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if self.state != "down":
            fallback = ("local limits and cache until it is back" if self.team.fail == "open"
                        else "model calls are refused until it is back ([team] fail = \"closed\")")
            log.warning("team Redis %s is unreachable (%s); %s", self.where, message, fallback)
            self.down_since = time.time()
        self.state, self.last_error = "down", message[:300]
        self._retry_at = time.monotonic() + self.team.retry_s

    def redact(self, text: str) -> str:
        name = self.team.redis_password_env
        password = self._env.get(name, "").strip() if name else ""
        if password:
            text = text.replace(password, "[redacted]")
        return text.replace(self.team.redis_url, self.where)

    async def aclose(self) -> None:
        if self._redis is not None:
            redis, self._redis = self._redis, None
            try:
                await redis.aclose()
            except Exception:  # closing a dead connection: nothing left to do
                pass


class TeamGate:
    """The attempt wrapper's Gate kept in Redis, with a LocalGate as the fallback."""

    def __init__(self, config: LLMConfig, link: TeamLink, local: LocalGate, *, member: str | None = None) -> None:
        self.config = config
        self.link = link
        self.local = local
        self.member = member or f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"
        self._ids = itertools.count()
        self._line = Line()  # one poller per daemon: interactive callers first, then by arrival
        self._window_us = int(config.window_s * _MICRO)
        self._cooldown_us = int(config.breaker_cooldown_s * _MICRO)
        self.waited_s = 0.0
        self.fallbacks = 0  # attempts admitted by local limits while Redis was down
        self.refused = 0  # attempts refused while Redis was down (fail = "closed")
        # The team as last seen (for stats and for the fallback's share).
        self.seen_requests = 0
        self.seen_tokens = 0
        self.peers = 1
        self.spent_usd = 0.0
        self.seen_at: float | None = None

    def _inflight_us(self, request: PreparedRequest) -> int:
        # How long an admitted request may stay unstamped: past this a crashed
        # daemon's entries leave the window on their own.
        return int((request.timeout_s + self.config.connect_timeout_s + 1.0) * _MICRO)

    async def admit(self, request: PreparedRequest) -> Ticket:
        tpm = self.config.tpm
        if tpm is not None and request.tokens > tpm:
            raise LLMRequestTooLarge(
                f"request needs ~{request.tokens} tokens but the team's limit is tpm={tpm} per "
                f"{self.config.window_s:g}s; shorten the prompt or lower max_tokens"
            )
        if self.link.usable():
            try:
                return await self._admit_shared(request)
            except TeamDown:
                pass
        if self.link.team.fail == "closed":
            self.refused += 1
            raise LLMTeamUnavailable(
                f"the team's Redis at {self.link.where} is unreachable ({self.link.last_error}) and [team] fail = "
                "\"closed\": model calls are refused until it is back (or set fail = \"open\" to use local limits)"
            )
        self.fallbacks += 1
        self._share_locally()
        return await self.local.admit(request)

    def _share_locally(self) -> None:
        """Local limits while Redis is down: the team's, divided among the daemons last seen."""
        limiter, peers = self.local.limiter, max(self.peers, 1)
        cfg = self.config
        limiter.rpm = max(cfg.rpm // peers, 1) if cfg.rpm is not None else None
        limiter.tpm = max(cfg.tpm // peers, 1) if cfg.tpm is not None else None
        budget = self.local.budget
        if budget is not None:
            budget.spent = max(budget.spent, self.spent_usd)  # the team's spending so far still counts

    async def _admit_shared(self, request: PreparedRequest) -> Ticket:
        cfg = self.config
        budgeted = cfg.has_budget
        cost = estimated_cost(cfg, request) if budgeted else 0.0
        plan = request.options.plan
        plan_tag = _plan_tag(plan) if (plan and cfg.budget_usd_per_plan_per_day is not None) else ""
        ident = f"{self.member}:{next(self._ids)}"
        args: list[int | str] = [
            ident, request.tokens, cfg.rpm or 0, cfg.tpm or 0, self._window_us, self._inflight_us(request),
            int(_POLL_S * _MICRO), self.member, cfg.breaker_failures, self._cooldown_us,
            round(cost * _MICRO), round((cfg.budget_usd_per_day or 0) * _MICRO),
            round((cfg.budget_usd_per_plan_per_day or 0) * _MICRO), plan_tag,
        ]
        started = time.monotonic()
        line = self._line
        me = line.join(PRIORITY[request.options.priority])
        on_wait, told = request.options.on_wait, False
        try:
            while True:
                if not line.first(me):
                    await line.changed(None)  # the first in line asks Redis; when it leaves, the next does
                    continue
                result = await self.link.run("admit", args)
                status = int(result[0])
                if status == 1:
                    self._saw(int(result[1]), int(result[2]), int(result[3]), int(result[4]))
                    return Ticket(tokens=request.tokens, cost_reserved=cost, plan=plan_tag or None,
                                  shared_id=ident, day=int(result[5]))
                if status in (0, -3):
                    if status == 0:
                        self.seen_requests, self.seen_tokens = int(result[2]), int(result[3])
                    delay = int(result[1]) / _MICRO
                    if on_wait is not None and not told and status == 0 and delay >= _TELL_S:
                        told = True
                        on_wait(delay, "the team's rate limit (rpm/tpm) reached")
                    # Cut short when a caller of higher priority joins the line: it asks Redis next.
                    await line.changed(delay)
                    continue
                if status == -1:
                    retry_in = int(result[1]) / _MICRO
                    raise LLMCircuitOpen(
                        f"LLM provider {cfg.base_url} is failing for the team (another daemon saw "
                        f"{cfg.breaker_failures} consecutive failures); circuit open, failing fast: retrying in "
                        f"{retry_in:.1f}s", retry_in_s=retry_in)
                spent, budget = int(result[1]) / _MICRO, int(result[2]) / _MICRO
                if int(result[3]) == 1:
                    self.spent_usd = spent
                raise LLMBudgetExceeded(budget_message(scope="plan" if int(result[3]) == 2 else "day",
                                                       spent=spent, budget=budget, cost=cost, team=True))
        finally:
            line.leave(me)
            self.waited_s += time.monotonic() - started

    def _saw(self, requests: int, tokens: int, peers: int, spent_micro: int) -> None:
        self.seen_requests, self.seen_tokens, self.peers = requests, tokens, max(peers, 1)
        if spent_micro:
            self.spent_usd = spent_micro / _MICRO
        self.seen_at = time.time()

    async def sent(self, ticket: Ticket) -> None:
        if ticket.shared_id is None:
            await self.local.sent(ticket)
            return
        ticket.sent_marked = True
        try:
            await self.link.run("stamp", [ticket.shared_id, self._window_us])
        except TeamDown:
            pass  # left unstamped it counts until its in-flight bound: later, never earlier

    async def settle(self, ticket: Ticket, *, sent: bool, usage: Usage | None, health: Health) -> None:
        if ticket.shared_id is None:
            await self.local.settle(ticket, sent=sent, usage=usage, health=health)
            return
        cfg = self.config
        actual = cfg.cost(usage.prompt_tokens, usage.completion_tokens) if usage is not None else 0.0
        args: list[int | str] = [
            ticket.shared_id, int(sent), usage.total_tokens if usage is not None else -1, self._window_us,
            round(ticket.cost_reserved * _MICRO), round(actual * _MICRO), ticket.day if cfg.has_budget else 0,
            ticket.plan or "", {"success": "s", "failure": "f"}.get(health, "n"), cfg.breaker_failures,
            self._cooldown_us,
        ]
        try:
            await self.link.run("settle", args)
        except TeamDown:
            pass
        if cfg.has_budget:
            self.spent_usd += actual - ticket.cost_reserved

    async def pause(self, seconds: float) -> None:
        await self.local.pause(seconds)
        if seconds > 0 and self.link.usable():
            try:
                await self.link.run("pause", [int(seconds * _MICRO)])
            except TeamDown:
                pass

    async def observe(self, headers: Mapping[str, str]) -> None:
        await self.local.observe(headers)
        # The provider says the account is spent: every daemon waits for its reset.
        for dim in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{dim}")
            if remaining is not None and remaining.strip() in ("0", "0.0"):
                await self.pause(parse_reset(headers.get(f"x-ratelimit-reset-{dim}")) or 1.0)
                return

    async def refresh(self) -> None:
        """Read the team's window, peers and spending now (for `perfd stats`)."""
        if not self.link.usable():
            return
        try:
            result = await self.link.run("view", [self._window_us, int((self.config.timeout_s + 15) * _MICRO)])
        except TeamDown:
            return
        self._saw(int(result[0]), int(result[1]), int(result[2]), int(result[3]))

    def stats(self, *, cache_hits: int, cache_misses: int, cache_rejected: int = 0) -> TeamStats:
        link, cfg = self.link, self.config
        rtt = link.rtt_ms.percentiles(0.5, 0.95) if len(link.rtt_ms) else (None, None)
        left = (max(cfg.budget_usd_per_day - self.spent_usd, 0.0)
                if cfg.budget_usd_per_day is not None else None)
        return TeamStats(
            redis=link.where, namespace=link.namespace, fail=link.team.fail,
            state=link.state, down_since=link.down_since,
            last_error=link.last_error if link.state == "down" else None,
            peers=self.peers, window_requests=self.seen_requests, window_tokens=self.seen_tokens,
            rpm=cfg.rpm, tpm=cfg.tpm, window_s=cfg.window_s, seen_at=self.seen_at,
            cache_hits=cache_hits, cache_misses=cache_misses,
            budget_usd_per_day=cfg.budget_usd_per_day, budget_used_usd=round(self.spent_usd, 6),
            budget_left_usd=None if left is None else round(left, 6),
            redis_ops=link.ops, redis_errors=link.errors,
            redis_rtt_p50_ms=rtt[0], redis_rtt_p95_ms=rtt[1],
            fallbacks=self.fallbacks, refused=self.refused, waited_s=round(self.waited_s, 6),
            cache_rejected=cache_rejected,
        )


_TELL_S = 0.05  # a shorter wait for the team's window is not worth a line on the terminal


class Line:
    """The callers of one daemon waiting for the team's limit: lower priority first (an interactive call before
    a batch's), then by arrival. Only the first asks Redis, so the shared protocol is unchanged and a daemon
    adds one poller, not one per caller."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._changed = anyio.Event()

    def join(self, priority: int) -> tuple[int, int]:
        me = (priority, next(self._seq))
        heapq.heappush(self._heap, me)
        if self._heap[0] == me:  # ahead of whoever was first: wake it so it yields
            self._notify()
        return me

    def first(self, me: tuple[int, int]) -> bool:
        return self._heap[0] == me

    def leave(self, me: tuple[int, int]) -> None:
        was_first = self._heap[0] == me
        self._heap.remove(me)
        heapq.heapify(self._heap)
        if was_first:
            self._notify()

    async def changed(self, timeout: float | None) -> None:
        """Wait until the first in line changes (or `timeout` seconds pass)."""
        event = self._changed
        with anyio.move_on_after(timeout):
            await event.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


def _plan_tag(plan: str) -> str:
    import hashlib

    return hashlib.sha256(plan.encode()).hexdigest()[:16]


class SharedCache:
    """The response cache's shared level: one Redis string per answer, with a TTL, large ones compressed.

    Whoever can write to the team's Redis can plant any value under a key, so nothing read back is trusted
    for size or shape: at most `max_bytes` (plus zlib's worst-case overhead) is fetched, a compressed value
    is inflated to at most `max_bytes`, large values are decoded off the event loop, and a value that is
    too large or does not decode as an answer is a miss, counted (`rejected`) and logged.
    """

    def __init__(self, link: TeamLink, *, ttl_s: float, compress_min_bytes: int,
                 max_bytes: int = 4 * 1024 * 1024) -> None:
        self.link = link
        self.ttl_s = ttl_s
        self.compress_min = compress_min_bytes
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.rejected = 0
        self._logged_at = -_LOG_EVERY_S
        self._pending: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> CachedResponse | None:
        if not self.link.usable():
            return None
        try:
            raw = await self.link.get_head("c:" + key, _stored_limit(self.max_bytes))
        except TeamDown:
            return None
        response: CachedResponse | None = None
        if raw:
            if len(raw) <= _INLINE_BYTES:
                decoded = decode_value(raw, self.max_bytes)
            else:  # up to a few MB to inflate and decode: a thread's work, not the loop's
                decoded = await anyio.to_thread.run_sync(decode_value, raw, self.max_bytes)
            if isinstance(decoded, str):
                self._reject(key, decoded)
            else:
                response = decoded
        if response is None:
            self.misses += 1
        else:
            self.hits += 1
        return response

    def _reject(self, key: str, why: str) -> None:
        self.rejected += 1
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_S:  # one line a minute at most, whatever is planted
            self._logged_at = now
            log.warning("team Redis %s: shared answer %s… ignored (%s); %d ignored so far, each a cache miss",
                        self.link.where, key[:12], why, self.rejected)

    def put(self, key: str, response: CachedResponse, *, ttl_s: float | None = None) -> None:
        """Store in the background; a failure only costs the other daemons a miss."""
        if not self.link.usable():
            return
        body = _encoder.encode(response)
        if len(body) > self.max_bytes:
            return  # no daemon would read it back
        value = _ZLIB + zlib.compress(body, 6) if len(body) >= self.compress_min else _RAW + body
        ttl = min(self.ttl_s, ttl_s) if ttl_s is not None else self.ttl_s
        task = asyncio.get_running_loop().create_task(self._set(key, value, ttl))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _set(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await self.link.set("c:" + key, value, ttl_s=ttl)
        except TeamDown:
            pass

    async def flush(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


_INLINE_BYTES = 64 * 1024  # values up to this size are decoded on the loop (well under a millisecond)
_LOG_EVERY_S = 60.0


def _stored_limit(max_bytes: int) -> int:
    """The largest stored value an answer of `max_bytes` can make: a marker byte and zlib's worst case."""
    return 1 + max_bytes + max_bytes // 1000 + 64


def decode_value(raw: bytes, max_bytes: int) -> CachedResponse | str:
    """The answer stored in `raw`, or why it is refused: larger than `max_bytes` (stored or once inflated),
    not one of our formats, or not an answer. Never inflates more than `max_bytes` + 1 bytes."""
    if len(raw) > _stored_limit(max_bytes):
        return "too large"
    tag, data = raw[:1], raw[1:]
    try:
        if tag == _ZLIB:
            inflater = zlib.decompressobj()
            body = inflater.decompress(data, max_bytes + 1)
            if len(body) > max_bytes or inflater.unconsumed_tail:
                return "too large once inflated"
            if not inflater.eof:
                return "truncated"
        elif tag == _RAW:
            body = data
            if len(body) > max_bytes:
                return "too large"
        else:
            return "unknown format"
        return _decoder.decode(body)
    except zlib.error:
        return "not zlib data"
    except msgspec.DecodeError:
        return "not an answer"
