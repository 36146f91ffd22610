"""History of every model call, for `perfd stats --history`.

One row per call (cache hits and failures included) in SQLite with indexes
that match the three questions asked of it: per plan, per day, per outcome.
Rows are written by the store's writer thread in batches; the table is kept
to `max_rows` by dropping the oldest rows. Prompts and API keys are never
stored, nor answers, but for one case: an answer paid for that `run --write`
could not write is kept (table `kept`), so that it is never lost.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

import msgspec

from .store import SQLiteStore

HISTORY_FORMAT = 1

# `cost` (and a cache hit's `cost_saved`) is NULL when no price was known for the model (unknown, not free).
_CALLS = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    plan TEXT,
    achievement TEXT,
    state TEXT,
    model TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL,
    cache_hit INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    workspace TEXT,
    cost_saved REAL DEFAULT 0
);
"""
_CALLS_INDEXES = """
CREATE INDEX IF NOT EXISTS calls_plan ON calls(plan, ts);
CREATE INDEX IF NOT EXISTS calls_day ON calls(day, outcome);
CREATE INDEX IF NOT EXISTS calls_outcome ON calls(outcome, ts);
"""
_SCHEMA = _CALLS + _CALLS_INDEXES + """
CREATE TABLE IF NOT EXISTS kept (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    plan TEXT,
    achievement TEXT,
    path TEXT,
    error TEXT,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    day INTEGER NOT NULL,
    plan TEXT,
    amount REAL NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS spend_day ON spend(day, plan);
"""

# Columns added since format 1, added in place to an older file (its rows are kept:
# a workspace of NULL is "recorded before perfd knew", shown only with --all).
_ADDED = (("workspace", "TEXT"), ("cost_saved", "REAL NOT NULL DEFAULT 0"))


def _migrate(conn: sqlite3.Connection) -> None:
    have = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    for name, decl in _ADDED:
        if name not in have:
            conn.execute(f"ALTER TABLE calls ADD COLUMN {name} {decl}")
    if _cost_required(conn):
        _allow_unknown_cost(conn)
    conn.execute("CREATE INDEX IF NOT EXISTS calls_workspace ON calls(workspace, ts)")


def _cost_required(conn: sqlite3.Connection) -> bool:
    return any(row[1] in ("cost", "cost_saved") and row[3] for row in conn.execute("PRAGMA table_info(calls)"))


def _allow_unknown_cost(conn: sqlite3.Connection) -> None:
    """A file from before unknown costs were NULL: its `cost`'s and `cost_saved`'s NOT NULL dropped. SQLite cannot alter a
    column's constraint, so the table is copied into one without it (ids and rows as they were)."""
    conn.execute("BEGIN IMMEDIATE")  # one process migrates; another that waited finds it done
    try:
        if _cost_required(conn):
            conn.execute("DROP TABLE IF EXISTS calls_migrating")
            conn.execute(_CALLS.replace("IF NOT EXISTS calls (", "calls_migrating (", 1))
            conn.execute(f"INSERT INTO calls_migrating (id, {', '.join(_COLUMNS)}) "
                         f"SELECT id, {', '.join(_COLUMNS)} FROM calls")
            conn.execute("DROP TABLE calls")  # its indexes go with it; made again below
            conn.execute("ALTER TABLE calls_migrating RENAME TO calls")
            for statement in _CALLS_INDEXES.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class CallRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One model call as recorded in the history."""

    ts: float  # unix time the call started
    model: str
    latency_ms: float
    outcome: str  # "ok", "cancelled" or an error kind ("timeout", "http_5xx", ...)
    plan: str | None = None
    achievement: str | None = None
    state: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0  # None: no price known for the model (unknown, not free)
    cache_hit: bool = False
    error: str | None = None
    attempts: int = 1
    stream: bool = False
    workspace: str | None = None  # the workspace root the call was made for
    cost_saved: float | None = 0.0  # a cache hit: what the call would have cost at the configured prices (None: unknown)

    @property
    def day(self) -> str:
        """The local calendar day of the call (what a person means by "today")."""
        return time.strftime("%Y-%m-%d", time.localtime(self.ts))


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """Totals for one group of calls (a plan, a day or an outcome).

    Tokens are split by who paid: `prompt_tokens`/`completion_tokens` were sent
    to the model (calls answered by it), `tokens_saved` were served from the
    response cache; `cost` was paid and `cost_saved` was not, thanks to the cache.
    """

    group: str | None
    calls: int
    cache_hits: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # None: every call of the group is of unknown cost
    avg_latency_ms: float
    first_ts: float
    last_ts: float
    tokens_saved: int = 0
    cost_saved: float | None = 0.0  # None: every cache hit of the group is of unknown cost
    unknown_cost_calls: int = 0  # calls of no known price: `cost` is what the others cost (None: no other)
    unknown_saved_calls: int = 0  # cache hits of no known price: `cost_saved` is what the others saved


class KeptAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """An answer that could not be written where it was meant to go, kept to be printed again."""

    ts: float
    model: str
    text: str
    plan: str | None = None
    achievement: str | None = None
    path: str | None = None  # where it was to be written
    error: str | None = None  # why it was not
    id: int | None = None


_KEPT = ("ts", "model", "plan", "achievement", "path", "error", "text")


class Filter(msgspec.Struct, frozen=True, kw_only=True):
    """Which calls a query counts; every field may be left out (None: no condition)."""

    workspace: str | None = None
    plan: str | None = None
    model: str | None = None
    since: float | None = None  # unix time


_COLUMNS = ("ts", "day", "plan", "achievement", "state", "model", "latency_ms", "prompt_tokens",
            "completion_tokens", "cost", "cache_hit", "outcome", "error", "attempts", "stream", "workspace",
            "cost_saved")
_INSERT = f"INSERT INTO calls({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_AGG = ("count(*), sum(cache_hit), sum(outcome NOT IN ('ok', 'cancelled')), "
        "sum(CASE WHEN cache_hit THEN 0 ELSE prompt_tokens END), "
        "sum(CASE WHEN cache_hit THEN 0 ELSE completion_tokens END), sum(cost), avg(latency_ms), min(ts), max(ts), "
        "sum(CASE WHEN cache_hit THEN prompt_tokens + completion_tokens ELSE 0 END), sum(cost_saved), "
        "sum(cost IS NULL), sum(cache_hit AND cost_saved IS NULL)")


class History:
    """The call history file. Queries are blocking (milliseconds, indexed):
    call them from a CLI directly or via `anyio.to_thread` in the daemon."""

    def __init__(self, path: str, *, max_rows: int = 100_000, read_only: bool = False) -> None:
        self._store = SQLiteStore(path, _SCHEMA, version=HISTORY_FORMAT, on_open=_migrate, read_only=read_only)
        self.max_rows = max_rows

    @property
    def path(self) -> str:
        return self._store.path

    def record(self, call: CallRecord) -> None:
        """Queue one call for writing; returns at once."""
        row = (call.ts, call.day, call.plan, call.achievement, call.state, call.model, call.latency_ms,
               call.prompt_tokens, call.completion_tokens, call.cost, int(call.cache_hit), call.outcome,
               call.error, call.attempts, int(call.stream), call.workspace, call.cost_saved)
        keep = self.max_rows

        def write(conn: sqlite3.Connection) -> None:
            cur = conn.execute(_INSERT, row)
            # Rowids only grow, so "oldest" is a primary-key range: cheap.
            conn.execute("DELETE FROM calls WHERE id <= ?", ((cur.lastrowid or 0) - keep,))

        self._store.submit(write)

    def keep(self, answer: KeptAnswer) -> int:
        """Keep `answer` now (blocking, a few ms): its id, for kept()."""
        row = tuple(getattr(answer, c) for c in _KEPT)

        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute(f"INSERT INTO kept({', '.join(_KEPT)}) VALUES ({', '.join('?' * len(_KEPT))})", row)
            return int(cur.lastrowid or 0)

        return self._store.run(write)

    def kept(self, answer_id: int) -> KeptAnswer | None:
        """The answer kept under `answer_id`, or None (none, or a history from before answers were kept)."""
        def read(conn: sqlite3.Connection) -> tuple[object, ...] | None:
            try:
                got: tuple[object, ...] | None = conn.execute(
                    f"SELECT id, {', '.join(_KEPT)} FROM kept WHERE id = ?", (answer_id,)).fetchone()
            except sqlite3.OperationalError:  # no such table: an older file opened read-only
                return None
            return got

        row = self._store.run(read)
        if row is None:
            return None
        return msgspec.convert(dict(zip(("id", *_KEPT), row)), KeptAnswer, strict=False)

    async def flush(self) -> None:
        await self._store.flush()

    # -- the day's spending (the budget), shared by every process of the user --------

    def reserve(self, *, day: int, cost: float, plan: str | None, per_day: float | None,
                per_plan: float | None) -> tuple[int | None, float, float]:
        """In one transaction, what the day (and the plan) spent so far, counting the reservations of calls
        still under way in any process; if `cost` fits both limits, a reservation of it.

        (reservation id or None when it does not fit, spent today, spent today on `plan`). Blocking."""

        def go(conn: sqlite3.Connection) -> tuple[int | None, float, float]:
            conn.execute("BEGIN IMMEDIATE")  # one process at a time: two runs at once cannot both fit
            try:
                spent = conn.execute("SELECT coalesce(sum(amount), 0) FROM spend WHERE day = ?", (day,)).fetchone()[0]
                on_plan = 0.0
                if plan and per_plan is not None:
                    on_plan = conn.execute("SELECT coalesce(sum(amount), 0) FROM spend WHERE day = ? AND plan = ?",
                                           (day, plan)).fetchone()[0]
                fits = ((per_day is None or spent + cost <= per_day)
                        and (per_plan is None or not plan or on_plan + cost <= per_plan))
                row: int | None = None
                if fits:
                    cur = conn.execute("INSERT INTO spend (ts, day, plan, amount) VALUES (?, ?, ?, ?)",
                                       (time.time(), day, plan, cost))
                    row = cur.lastrowid
                    conn.execute("DELETE FROM spend WHERE day < ?", (day - 2,))  # older days count for nothing
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return row, float(spent), float(on_plan)

        return self._store.run(go)

    def settle(self, reservation: int, amount: float) -> None:
        """The call ended: its reservation becomes what it cost (0 when nothing was sent). Blocking."""

        def go(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE spend SET amount = ?, settled = 1 WHERE id = ?", (amount, reservation))

        self._store.run(go)

    def spent(self, day: int) -> float:
        return float(self._store.run(lambda conn: conn.execute(
            "SELECT coalesce(sum(amount), 0) FROM spend WHERE day = ?", (day,)).fetchone()[0]))

    def close(self) -> None:
        self._store.close()

    # -- queries (blocking) ------------------------------------------------

    def by_plan(self, plan: str | None = None, *, since: float | None = None,
                where: Filter | None = None) -> list[Summary]:
        """Totals per plan (or for one plan), most recently active first."""
        f = msgspec.structs.replace(where or Filter(), **_set(plan=plan, since=since))
        cond, args = _where(f)
        sql = f"SELECT plan, {_AGG} FROM calls WHERE {cond} GROUP BY plan ORDER BY max(ts) DESC"
        return self._summaries(sql, args)

    def by_day(self, *, days: int = 30, now: float | None = None, where: Filter | None = None) -> list[Summary]:
        """Totals per local calendar day for the last `days` days, newest first."""
        start = (now if now is not None else time.time()) - (days - 1) * 86400
        first_day = time.strftime("%Y-%m-%d", time.localtime(start))
        cond, args = _where(where or Filter())
        sql = f"SELECT day, {_AGG} FROM calls WHERE day >= ? AND {cond} GROUP BY day ORDER BY day DESC"
        return self._summaries(sql, [first_day, *args])

    def by_outcome(self, *, since: float | None = None, where: Filter | None = None) -> list[Summary]:
        """Totals per outcome ("ok", "timeout", "http_429", ...), most frequent first."""
        f = msgspec.structs.replace(where or Filter(), **_set(since=since))
        cond, args = _where(f)
        sql = f"SELECT outcome, {_AGG} FROM calls WHERE {cond} GROUP BY outcome ORDER BY count(*) DESC"
        return self._summaries(sql, args)

    def by_model(self, *, where: Filter | None = None) -> list[Summary]:
        """Totals per model, most calls first."""
        cond, args = _where(where or Filter())
        sql = f"SELECT model, {_AGG} FROM calls WHERE {cond} GROUP BY model ORDER BY count(*) DESC"
        return self._summaries(sql, args)

    def calls(self, *, plan: str | None = None, outcome: str | None = None, limit: int = 50) -> list[CallRecord]:
        """The most recent calls, optionally of one plan and/or one outcome."""
        clauses: list[str] = []
        args: list[str | float] = []
        if plan is not None:
            clauses.append("plan = ?")
            args.append(plan)
        if outcome is not None:
            clauses.append("outcome = ?")
            args.append(outcome)
        where = " AND ".join(clauses) or "1"
        order = "ts DESC" if clauses else "id DESC"
        sql = f"SELECT {', '.join(c for c in _COLUMNS if c != 'day')} FROM calls WHERE {where} ORDER BY {order} LIMIT ?"
        args.append(limit)
        names = [c for c in _COLUMNS if c != "day"]
        rows = self._store.run(lambda conn: conn.execute(sql, args).fetchall())
        return [msgspec.convert(dict(zip(names, row)), CallRecord, strict=False) for row in rows]

    def count(self) -> int:
        return int(self._store.run(lambda conn: conn.execute("SELECT count(*) FROM calls").fetchone()[0]))

    def _summaries(self, sql: str, args: Sequence[str | float]) -> list[Summary]:
        rows = self._store.run(lambda conn: conn.execute(sql, args).fetchall())
        return [
            Summary(group=r[0], calls=r[1], cache_hits=r[2] or 0, errors=r[3] or 0, prompt_tokens=r[4] or 0,
                    completion_tokens=r[5] or 0, cost=_known_cost(r[6], r[12] or 0, r[1] - (r[2] or 0)),
                    avg_latency_ms=r[7] or 0.0, first_ts=r[8], last_ts=r[9], tokens_saved=r[10] or 0,
                    cost_saved=_known_cost(r[11], r[13] or 0, r[2] or 0), unknown_cost_calls=r[12] or 0,
                    unknown_saved_calls=r[13] or 0)
            for r in rows
        ]


def _known_cost(total: float | None, unknown: int, calls: int) -> float | None:
    """The sum of the known costs; None when every one of the `calls` is of unknown cost (a cache hit
    is not one of them: it cost nothing, and what it saved is counted apart)."""
    if unknown and unknown >= calls:
        return None
    return float(total or 0.0)


def _set(**fields: object) -> dict[str, object]:
    return {k: v for k, v in fields.items() if v is not None}


def _where(f: Filter) -> tuple[str, list[str | float]]:
    clauses: list[str] = []
    args: list[str | float] = []
    for column, value in (("workspace", f.workspace), ("plan", f.plan), ("model", f.model)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if f.since is not None:
        clauses.append("ts >= ?")
        args.append(f.since)
    return " AND ".join(clauses) or "1", args
