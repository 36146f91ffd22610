"""The gate an attempt passes before it is sent: rate limits and the daily budget.

`Gate` is what the attempt wrapper calls; it does not know where the limits
live. `LocalGate` keeps them in this process (the RateLimiter and a budget
counted in memory); `perfd.llm.team.TeamGate` keeps them in Redis for a whole
team and falls back to a LocalGate when Redis is unreachable and `[team]
fail = "open"`.

An attempt's life: `admit` (waits for capacity; refuses a call over budget
before anything is sent) -> `sent` (the server has seen it: its window
starts) -> `settle` (always, on every way out: the reported usage, whether it
was sent at all, what it said about the provider's health).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Protocol

import anyio
import anyio.to_thread

from .breaker import Health
from .config import LLMConfig
from .errors import LLMBudgetExceeded
from .parsing import cost_of
from .ratelimit import RateLimiter, Reservation
from .types import PreparedRequest, Usage

_DAY_S = 86400
PRIORITY = {"interactive": 0, "batch": 1}  # lower goes first under one rate limit


class Ticket:
    """One admitted attempt (an opaque handle for the gate that issued it)."""

    __slots__ = ("tokens", "cost_reserved", "plan", "local", "shared_id", "day", "sent_marked", "ledger_row")

    def __init__(self, *, tokens: int, cost_reserved: float, plan: str | None,
                 local: Reservation | None = None, shared_id: str | None = None, day: int = 0,
                 ledger_row: int | None = None) -> None:
        self.tokens = tokens
        self.cost_reserved = cost_reserved
        self.plan = plan
        self.local = local  # admitted by the local limiter
        self.shared_id = shared_id  # admitted by the team's Redis
        self.day = day  # the budget day (UTC) its cost was charged to
        self.sent_marked = False
        self.ledger_row = ledger_row  # its reservation in the history's spend table


class Gate(Protocol):
    async def admit(self, request: PreparedRequest) -> Ticket: ...

    async def sent(self, ticket: Ticket) -> None: ...

    async def settle(self, ticket: Ticket, *, sent: bool, usage: Usage | None, health: Health) -> None: ...

    async def pause(self, seconds: float) -> None: ...

    async def observe(self, headers: Mapping[str, str]) -> None: ...


def estimated_cost(config: LLMConfig, request: PreparedRequest) -> float:
    """The most this attempt may cost: the calibrated prompt estimate and every completion token reserved."""
    prompt = max(request.tokens - request.completion_reserved, 0)
    return config.cost(prompt, request.completion_reserved)


def budget_message(*, scope: str, spent: float, budget: float, cost: float, team: bool) -> str:
    who = "the team's" if team else "your"
    setting = "budget_usd_per_plan_per_day" if scope == "plan" else "budget_usd_per_day"
    what = f"{who} daily model budget{' for this plan' if scope == 'plan' else ''}"
    return (f"{what} would be exceeded: ${spent:.4f} of ${budget:.4f} spent today (UTC) and this call may cost "
            f"up to ${cost:.4f}; it was not sent. Raise [llm] {setting} or wait for 00:00 UTC")


class Ledger(Protocol):
    """Where every process of the user counts the day's spending (perfd.llm.history.History)."""

    def reserve(self, *, day: int, cost: float, plan: str | None, per_day: float | None,
                per_plan: float | None) -> tuple[int | None, float, float]: ...

    def settle(self, reservation: int, amount: float) -> None: ...


class LocalBudget:
    """The daily budget without a team: counted in the history's ledger when there is one (so it holds
    across restarts, the idle timeout, --no-daemon runs and two runs at once), else in this process."""

    def __init__(self, config: LLMConfig, ledger: Ledger | None = None) -> None:
        self.per_day = config.budget_usd_per_day
        self.per_plan = config.budget_usd_per_plan_per_day
        self.ledger = ledger
        self._day = -1
        self.spent = 0.0
        self._plans: dict[str, float] = {}

    def _today(self) -> int:
        day = int(time.time() // _DAY_S)
        if day != self._day:
            self._day, self.spent, self._plans = day, 0.0, {}
        return day

    async def reserve_shared(self, cost: float, plan: str | None) -> tuple[int, int | None]:
        """(day, ledger row): the reservation made in the ledger, or in this process without one."""
        ledger = self.ledger
        if ledger is None:
            return self.reserve(cost, plan), None
        day = self._today()
        row, spent, on_plan = await anyio.to_thread.run_sync(functools.partial(
            ledger.reserve, day=day, cost=cost, plan=plan, per_day=self.per_day, per_plan=self.per_plan))
        self.spent = spent + (cost if row is not None else 0.0)
        if row is None:
            if self.per_day is not None and spent + cost > self.per_day:
                raise LLMBudgetExceeded(budget_message(scope="day", spent=spent, budget=self.per_day,
                                                       cost=cost, team=False))
            raise LLMBudgetExceeded(budget_message(scope="plan", spent=on_plan, budget=self.per_plan or 0.0,
                                                   cost=cost, team=False))
        return day, row

    async def settle_shared(self, day: int, row: int | None, reserved: float, actual: float,
                            plan: str | None) -> None:
        if row is None or self.ledger is None:
            self.settle(day, actual - reserved, plan)
            return
        with anyio.CancelScope(shield=True):  # a cancelled call still settles what it reserved
            await anyio.to_thread.run_sync(self.ledger.settle, row, actual)
        if day == self._today():
            self.spent += actual - reserved

    def reserve(self, cost: float, plan: str | None) -> int:
        day = self._today()
        if self.per_day is not None and self.spent + cost > self.per_day:
            raise LLMBudgetExceeded(budget_message(scope="day", spent=self.spent, budget=self.per_day,
                                                   cost=cost, team=False))
        if self.per_plan is not None and plan:
            used = self._plans.get(plan, 0.0)
            if used + cost > self.per_plan:
                raise LLMBudgetExceeded(budget_message(scope="plan", spent=used, budget=self.per_plan,
                                                       cost=cost, team=False))
            self._plans[plan] = used + cost
        self.spent += cost
        return day

    def settle(self, day: int, delta: float, plan: str | None) -> None:
        if day != self._today():
            return
        self.spent += delta
        if plan and plan in self._plans:
            self._plans[plan] += delta


class LocalGate:
    """Limits kept in this process: the sliding-window RateLimiter and a LocalBudget."""

    def __init__(self, config: LLMConfig, limiter: RateLimiter) -> None:
        self.config = config
        self.limiter = limiter
        self.budget = LocalBudget(config) if config.has_budget else None

    async def admit(self, request: PreparedRequest) -> Ticket:
        cost = estimated_cost(self.config, request) if self.budget is not None else 0.0
        plan = request.options.plan
        day, row = await self.budget.reserve_shared(cost, plan) if self.budget is not None else (0, None)
        try:
            options = request.options
            reservation = await self.limiter.acquire(request.tokens, priority=PRIORITY[options.priority],
                                                     on_wait=options.on_wait)
        except BaseException:
            if self.budget is not None:
                await self.budget.settle_shared(day, row, cost, 0.0, plan)
            raise
        return Ticket(tokens=request.tokens, cost_reserved=cost, plan=plan, local=reservation, day=day, ledger_row=row)

    async def sent(self, ticket: Ticket) -> None:
        ticket.sent_marked = True
        if ticket.local is not None:
            self.limiter.commit(ticket.local)

    async def settle(self, ticket: Ticket, *, sent: bool, usage: Usage | None, health: Health) -> None:
        if ticket.local is not None:
            self.limiter.commit(ticket.local)  # a no-op if sent() did; unsent ones still count (conservative)
            if usage is not None:
                self.limiter.reconcile(ticket.local, usage.total_tokens)
        if self.budget is not None:
            actual = cost_of(self.config, usage) if usage is not None else 0.0
            await self.budget.settle_shared(ticket.day, ticket.ledger_row, ticket.cost_reserved, actual, ticket.plan)

    async def pause(self, seconds: float) -> None:
        self.limiter.pause(seconds)

    async def observe(self, headers: Mapping[str, str]) -> None:
        self.limiter.observe(headers)
