"""The socket protocol's messages: JSON-RPC 2.0 envelopes and each method's params and results.

Framing lives in perfd.wire.ipc. `perfd schema` writes a JSON Schema of every
Struct listed in SCHEMA_TYPES into schemas/ (tests fail when they drift).

Methods (params -> result):
  initialize  InitializeParams -> InitializeResult (version handshake)
  ping        none            -> PingResult (answered on the event loop, never behind engine work)
  generate    GenerateParams  -> perfd.engine.types.GenerateResult
  status      StatusParams    -> WorkspaceStatus, or PlanStatus when `plan` is given
  stats       none            -> StatsSnapshot
  invalidate  InvalidateParams -> InvalidateResult
  names       NamesParams     -> NamesResult (what shell completion offers: plan names, a plan's achievements)
  subscribe   none            -> SubscribeResult, then PlanChanged notifications on that connection
  shutdown    none            -> ShutdownResult (state is cleared before the answer)
  cli         CliParams       -> CliResult (or the raw body documented in perfd.wire.ipc when raw=true)
  run         RunParams       -> RunChunk notifications (`runChunk`) on that connection, then RunResult;
                                 NO_MODEL when the daemon's own environment has no model or API key
"""

from __future__ import annotations

from typing import Literal

import msgspec

from perfd.llm.stats import LLMStats

from perfd.engine.types import (
    AchievementStatus,
    CacheStats,
    GenerateResult,
    LatencyStats,
    PlanStatus,
    PlanSummary,
    Problem,
    WorkspaceStatus,
)

JSONRPC = "2.0"
Id = int | str | None

from perfd.wire.codes import (  # re-exported: the daemon answers with them
    INTERNAL_ERROR as INTERNAL_ERROR,
    INVALID_PARAMS as INVALID_PARAMS,
    INVALID_REQUEST as INVALID_REQUEST,
    METHOD_NOT_FOUND as METHOD_NOT_FOUND,
    NO_MODEL as NO_MODEL,
    PARSE_ERROR as PARSE_ERROR,
    USER_ERROR as USER_ERROR,
    TOO_BUSY as TOO_BUSY,
    SETTINGS_CHANGED as SETTINGS_CHANGED,
    SETTINGS_DIFFER as SETTINGS_DIFFER,
    VERSION_MISMATCH as VERSION_MISMATCH,
)


# The envelopes' params, result and error data are `object`: any JSON value, which msgspec
# decodes as it comes and the reader narrows (the method's own Struct) before use.
class Request(msgspec.Struct, omit_defaults=True):
    jsonrpc: Literal["2.0"]
    method: str
    id: Id = None
    params: dict[str, object] | list[object] | None = None


class ErrorObject(msgspec.Struct, omit_defaults=True):
    code: int
    message: str
    data: object = None


class Response(msgspec.Struct):
    id: Id
    result: object
    jsonrpc: Literal["2.0"] = "2.0"


class ErrorResponse(msgspec.Struct):
    id: Id
    error: ErrorObject
    jsonrpc: Literal["2.0"] = "2.0"


class Notification(msgspec.Struct, omit_defaults=True):
    method: str
    params: object = None
    jsonrpc: Literal["2.0"] = "2.0"


class UserErrorData(msgspec.Struct):
    code: str  # "outside-workspace", "unknown-plan", ...
    hint: str = ""
    candidates: list[str] = []


# --- params and results --------------------------------------------------------


class InitializeParams(msgspec.Struct, forbid_unknown_fields=True):
    version: str
    client: str = ""


class InitializeResult(msgspec.Struct):
    version: str
    compatible: bool
    pid: int
    root: str


class PingResult(msgspec.Struct):
    pong: bool
    pid: int
    version: str
    root: str
    uptime_s: float
    # The settings in force (perfd daemon status): the model and its server's host ("" when none),
    # the plans folder, a short digest of every setting, and what waits for `perfd trust`.
    model: str = ""
    model_host: str = ""
    plans_dir: str = ""
    settings: str = ""
    waiting_for_trust: list[str] = []
    settings_error: str = ""


class GenerateParams(msgspec.Struct, forbid_unknown_fields=True):
    plan: str
    achievement: str | None = None
    cwd: str | None = None
    trust_plan: bool = False
    # false: answer from what the watcher has reported so far, without taking its pending events first
    # (like watchman's sync_timeout 0): changes made just before may be missed. For measuring what the
    # read-your-writes guarantee costs; leave it true.
    sync: bool = True


class StatusParams(msgspec.Struct, forbid_unknown_fields=True):
    plan: str | None = None
    cwd: str | None = None
    trust_plan: bool = False
    sync: bool = True  # see GenerateParams.sync


class InvalidateParams(msgspec.Struct, forbid_unknown_fields=True):
    path: str | None = None


class InvalidateResult(msgspec.Struct):
    invalidated: int


class NamesParams(msgspec.Struct, forbid_unknown_fields=True):
    """`names`: what a shell completes, without a whole status (about 376 KB at 1,500 plans)."""

    plan: str | None = None  # its achievement numbers; None: every plan's name
    cwd: str | None = None  # where the plan is named from (as StatusParams.cwd)
    env: dict[str, str] = {}  # the caller's PERFD_* (as CliParams.env): other settings answer SETTINGS_DIFFER
    sync: bool = True  # see GenerateParams.sync


class NamesResult(msgspec.Struct):
    plans: list[str] = []  # every plan's name as a status shows it (`@NAME` takes it); [] when a plan was named
    achievements: list[str] = []  # the named plan's achievement numbers


class SubscribeResult(msgspec.Struct):
    subscribed: bool
    watching: bool


class ShutdownResult(msgspec.Struct):
    stopping: bool
    pid: int


class CliParams(msgspec.Struct, forbid_unknown_fields=True):
    argv: list[str]
    cwd: str
    version: str | None = None  # the client's perfd.__version__: a mismatch answers VERSION_MISMATCH
    raw: bool = False  # answer with the raw body (perfd.wire.ipc) instead of a JSON CliResult
    # The workspace root the client found (--root, or the walk up from cwd): the daemon uses it rather
    # than finding it again, and refuses a root other than its own (exit 1, naming both).
    root: str | None = None
    # The caller's PERFD_* variables (settings, never secrets): the daemon answers with them in force.
    env: dict[str, str] | None = None


class CliResult(msgspec.Struct):
    stdout: str
    stderr: str
    code: int


class RunParams(msgspec.Struct, forbid_unknown_fields=True):
    """`perfd run` through the daemon: the same argv as the command line (starting with "run").

    The daemon calls the model with ITS OWN environment (the one it was started
    with), for the caller's settings: `env` carries its PERFD_* variables, never its API key.
    """

    argv: list[str]
    cwd: str
    version: str | None = None
    tty: bool = False  # the client's stderr is a terminal: live progress lines for --parallel
    # The caller's PERFD_* variables (settings, never secrets): the model they name is the one called,
    # with the daemon's own keys; one the daemon's environment has no key for is run by the client.
    env: dict[str, str] | None = None
    # The workspace root the client found: used as is, and refused when not this daemon's (as for `cli`).
    root: str | None = None


class RunChunk(msgspec.Struct):
    """Params of the `runChunk` notification: output of a `run` in progress, in order."""

    text: str
    stream: Literal["out", "err"] = "out"


class RunAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What one achievement's run gave: the answer and what it cost, or the error that stopped it."""

    plan: str
    achievement: str
    state: str
    ok: bool
    text: str = ""
    cached: bool = False  # served from the response cache: nothing sent, nothing paid
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens: int = 0
    cost: float | None = None  # None when no prices are configured
    cost_saved: float | None = None  # a cache hit: what it would have cost (None when no prices are configured)
    seconds: float = 0.0
    written: str | None = None  # the file written (--write)
    write_error: str | None = None  # why the answer was not written (it is still printed)
    write_error_kind: str | None = None  # "exists" (not overwritten), "refused" (no file to write) or "os"
    kept: int | None = None  # the history's id of the answer kept when it could not be written
    error: str | None = None  # why there is no answer
    error_kind: str | None = None
    model: str | None = None  # the model that answered (a fallback's when the first one failed)


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The last JSON line of `perfd run --json`."""

    plan: str
    achievements: int
    failed: int
    cached: int
    tokens: int
    cost: float | None
    seconds: float
    tokens_saved: int = 0  # tokens of the answers served from the response cache (nothing sent)
    cost_saved: float | None = None
    written: list[str]
    code: int


class RunResult(msgspec.Struct):
    """The answer to `run`: the exit code of `perfd run`, each achievement's answer, and the summary."""

    code: int
    answers: list[RunAnswer] = []
    summary: RunSummary | None = None


class PlanChanged(msgspec.Struct):
    """Params of the `planChanged` notification sent to subscribers."""

    plan: str
    path: str
    state: str
    next: str | None
    done: int
    total: int
    changed: list[str]  # the files whose change caused it


class MethodStats(msgspec.Struct):
    """One command's (`generate`, `status`, `run`, ...) or JSON-RPC method's requests.

    One rule for errors, whatever the command: a request that did not succeed
    (a JSON-RPC error, or a command line that exited non-zero) is an error.
    """

    method: str
    requests: int
    errors: int
    latency: LatencyStats
    total_s: float = 0.0  # summed latency (Prometheus summaries' _sum)


class CacheLevel(msgspec.Struct, frozen=True):
    """One level of perfd's caches: whole answers, file parses, or model responses."""

    name: str  # "answers", "files", "model responses"
    hits: int
    misses: int
    hit_rate: float  # hits / (hits + misses), 0.0 before the first lookup


class UnwatchedFolder(msgspec.Struct):
    """A folder the watcher could not watch (so neither what lies under it): answers check it by stat."""

    path: str  # relative to the workspace root
    reason: str


class WatcherReport(msgspec.Struct):
    """How answers are kept fresh: the watcher, what it covers, and what is checked by stat instead."""

    backend: str  # "inotify" (perfd's own reader), "watchfiles", "polling", or "none" (not running)
    synced: bool = False  # answers take its pending events first (read-your-writes); else they stat every input
    folders: list[str] = []  # the folders watched, with what lies under them (relative to the root)
    watched: int = 0  # folders holding a watch
    unwatched: list[UnwatchedFolder] = []  # checked by stat until watched again
    no_events: list[str] = []  # folders on a file system that raises no change events (checked by stat)
    overflows: int = 0  # times the kernel dropped events (everything was checked again)
    max_user_watches: int = 0  # fs.inotify.max_user_watches (0: unknown)
    watches_needed: int = 0  # at least this many more watches would cover every folder (0: none missing)
    verify_interval_s: float = 0.0  # the background verification pass (0: off)
    verify_passes: int = 0
    verify_found: int = 0  # changes it found that no event had reported
    verify_cpu_share: float = 0.0  # CPU time of the passes over wall time since the first (one core = 1.0)


class StatsSnapshot(msgspec.Struct):
    version: str
    pid: int
    root: str
    uptime_s: float
    rss_bytes: int
    connections: int
    subscribers: int
    watcher_events: int
    watcher_batches: int
    cache: CacheStats
    memo_hits: int
    methods: list[MethodStats]
    llm: LLMStats | None = None  # the daemon's model client, once a model call has been made
    sessions: int = 0  # editor (LSP) sessions served
    latency: dict[str, LatencyStats] = {}  # the methods' latency by name, for status bars
    # Every cache level, and the share of all their lookups served from memory (the headline rate).
    levels: list[CacheLevel] = []
    hit_rate: float = 0.0
    memo_misses: int = 0
    # The opt-in /metrics HTTP endpoint ([daemon] metrics_addr): where it serves, or why it does not.
    metrics_addr: str | None = None
    metrics_error: str | None = None
    watcher: WatcherReport | None = None  # None: a perfd that did not say (older)


SCHEMA_TYPES: tuple[type, ...] = (
    Request, Response, ErrorResponse, ErrorObject, Notification, UserErrorData,
    InitializeParams, InitializeResult, PingResult, GenerateParams, StatusParams,
    InvalidateParams, InvalidateResult, NamesParams, NamesResult, SubscribeResult, ShutdownResult,
    CliParams, CliResult, RunParams, RunChunk, RunAnswer, RunSummary, RunResult, PlanChanged, StatsSnapshot,
    # the engine's results, as `generate` and `status` answer them (and the LSP's perfd.* commands)
    GenerateResult, WorkspaceStatus, PlanSummary, PlanStatus, AchievementStatus, Problem,
)


_encoder = msgspec.json.Encoder()


def encode(msg: object) -> bytes:
    """A message (Struct or plain data) as one frame."""
    from perfd.wire.ipc import frame

    return frame(_encoder.encode(msg))
