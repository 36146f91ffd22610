"""`perfd doctor [--json]`: the installation checked end to end, one line per check, each failure with
what to do about it. Exit 0 when every check passes (or has nothing to check), 1 otherwise.

Checks, in order: perfd and Python; the workspace and its plans; the settings and where each comes
from; the workspace's daemon (running, its version, its socket, who answers on it); the file
watcher's limit against the folders to watch; the model server (reachable, its key variable set,
the model in its models list: a GET that spends no tokens); the team's Redis when [team] is set;
the editor extension when installed.

A key goes only to a server named by settings perfd trusts: the settings in force hold a
workspace's base_url only once `perfd trust` allowed it (perfd.settings), and the models list is
asked without a key otherwise.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import msgspec

from perfd import __version__
from perfd.safetext import shown

if TYPE_CHECKING:
    from perfd.engine.engine import Engine

Status = Literal["pass", "fail", "skip"]
MODELS_TIMEOUT_S = 5.0
WATCH_LIMIT = "fs.inotify.max_user_watches"  # Linux's inotify only
# Where VS Code and its forks keep installed extensions, under the home folder.
EXTENSION_DIRS = (".vscode/extensions", ".vscode-server/extensions", ".vscode-oss/extensions",
                  ".cursor/extensions", ".windsurf/extensions")
EXTENSION_ID = "perfd.perfd"


class Check(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    status: Status
    detail: str
    fix: str = ""  # what to do (a failure's)


class Report(msgspec.Struct, frozen=True):
    ok: bool
    checks: list[Check]


def _pass(name: str, detail: str) -> Check:
    return Check(name, "pass", detail)


def _fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "fail", detail, fix)


def _skip(name: str, detail: str) -> Check:
    return Check(name, "skip", detail)


class Context:
    """What the checks learn on the way and share: the root, the settings in force."""

    def __init__(self, root_option: str | None, cwd: str, env: Mapping[str, str], home: str, *,
                 find_root: Callable[[str | None, str], str], engine_for: Callable[[str], Engine]) -> None:
        self.find_root = find_root  # perfd.app.commands.resolve_root: the CLI's rules and messages
        self.engine_for = engine_for
        self.root_option = root_option
        self.cwd = cwd
        self.env = env
        self.home = home
        self.root: str | None = None
        self.plans_dir: str | None = None
        from perfd.settings.resolve import Settings

        self.settings: Settings | None = None


def check_version(ctx: Context) -> Check:
    return _pass("perfd", f"perfd {__version__}, Python {platform.python_version()} ({sys.executable})")


def check_workspace(ctx: Context) -> Check:
    from perfd.engine.errors import UserError

    try:
        ctx.root = os.path.realpath(ctx.find_root(ctx.root_option, ctx.cwd))
        engine = ctx.engine_for(ctx.root)
        ctx.plans_dir = engine.plans_dir
        names = engine.plan_names()
    except UserError as exc:
        return _fail("workspace", exc.message, exc.hint or "run perfd inside a workspace, or pass --root DIR")
    where = os.path.relpath(engine.plans_dir, ctx.root)
    if not names:
        return _fail("workspace", f"{shown(ctx.root)}: no plans under {shown(where)}",
                     f"add a plan: {shown(where)}/NAME/PLAN_NAME.md (docs/PLAN-FORMAT.md)")
    listed = ", ".join("@" + shown(n) for n in names[:5]) + (f", ... ({len(names)})" if len(names) > 5 else "")
    return _pass("workspace", f"{shown(ctx.root)}: {len(names)} plan{'s' * (len(names) != 1)} under {shown(where)} ({listed})")


def check_settings(ctx: Context) -> Check:
    from perfd.settings.resolve import load
    from perfd.settings.sources import SettingsError

    try:
        ctx.settings = s = load(ctx.root, dict(ctx.env))
    except SettingsError as exc:
        return _fail("settings", shown(str(exc)), "fix the setting named (perfd config lists what is in force)")
    used = [e for e in s.entries if not e.ignored]
    by = ", ".join(f"{e.name} from {e.origin.source} ({shown(e.origin.where)})" for e in used) or "all defaults"
    files = ", ".join(shown(f) for f in s.files) or "no settings file"
    if s.waiting:
        return _fail("settings", f"{files}; {', '.join(s.waiting)} wait for your trust",
                     "perfd trust --show lists them; perfd trust allows them")
    return _pass("settings", f"{files}; {by}")


def check_daemon(ctx: Context) -> Check:
    from perfd.wire.rendezvous import daemon_supported, exchange, request_body, state_paths

    if ctx.root is None:
        return _skip("daemon", "no workspace")
    if not daemon_supported():
        return _skip("daemon", "this system has no Unix sockets: every command works in-process")
    try:
        sock_path = state_paths(ctx.root).sock
    except OSError as exc:
        return _fail("daemon", shown(str(exc)), "fix the runtime folder named (PERFD_RUNTIME_DIR)")
    start = "perfd daemon start (any command also starts it)"
    try:
        st = os.lstat(sock_path)
    except OSError:
        return _fail("daemon", f"not running (no socket {shown(sock_path)})", start)
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return _fail("daemon", f"the socket {shown(sock_path)} belongs to uid {st.st_uid}, not you",
                     "remove it; perfd daemon start")
    try:
        from perfd.daemon.peer import peer_credentials

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5.0)
            s.connect(sock_path)
            peer = peer_credentials(s)
            body = exchange(s, request_body("ping"))
    except OSError as exc:
        return _fail("daemon", f"not answering on {shown(sock_path)} ({shown(exc.strerror or str(exc))})", start)
    if hasattr(os, "getuid") and peer.uid != os.getuid():
        return _fail("daemon", f"the process on {shown(sock_path)} runs as uid {peer.uid}, not you",
                     "stop that process; perfd daemon start")
    try:
        result = json.loads(body).get("result") or {}
    except ValueError:
        result = {}
    version = str(result.get("version", "?"))
    pid = result.get("pid", peer.pid)
    detail = f"running, pid {pid}, perfd {shown(version)}, socket {shown(sock_path)}, peer uid {peer.uid} (you)"
    if version != __version__:
        return _fail("daemon", detail + f"; this perfd is {__version__}", "perfd daemon restart")
    return _pass("daemon", detail)


def folders_to_watch(top: str) -> int:
    n = 0
    for _, dirs, _ in os.walk(top):
        n += 1
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return n


def check_watcher(ctx: Context) -> Check:
    if ctx.plans_dir is None:
        return _skip("file watcher", "no workspace")
    if not sys.platform.startswith("linux"):
        return _skip("file watcher", f"no watch limit to check on {sys.platform}")
    from perfd.runtime.inotify import max_user_watches

    limit = max_user_watches()  # what the daemon's watcher reads too
    if limit <= 0:
        return _skip("file watcher", f"the watch limit ({WATCH_LIMIT}) cannot be read")
    folders = folders_to_watch(ctx.plans_dir)
    detail = f"{folders} folder{'s' * (folders != 1)} to watch, limit {limit} (fs.inotify.max_user_watches)"
    if folders >= limit:
        return _fail("file watcher", detail, f"sudo sysctl fs.inotify.max_user_watches={max(2 * folders, 524288)}"
                     " (perfd checks files by stat meanwhile)")
    return _pass("file watcher", detail)


Fetch = Callable[[str, Mapping[str, str]], tuple[int, bytes]]


def _get(url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
    import httpx

    r = httpx.get(url, headers=dict(headers), timeout=MODELS_TIMEOUT_S, follow_redirects=False)
    return r.status_code, r.content


def check_model(ctx: Context, fetch: Fetch = _get) -> list[Check]:
    """The model server: reachable, its key variable set, the model in its models list."""
    if ctx.root is None or ctx.settings is None:
        return [_skip("model server", "no workspace or settings")]
    from perfd.llm import LLMConfigError, workspace_llm_config
    from perfd.settings.resolve import WORKSPACE

    try:
        cfg = workspace_llm_config(ctx.root, env=ctx.env)
    except LLMConfigError as exc:
        return [_fail("model server", shown(str(exc)).splitlines()[0], "fix [llm] (perfd config shows where each is set)")]
    if cfg is None:
        return [_skip("model server", "none configured ([llm] base_url and model): perfd run needs one")]
    url = urlsplit(cfg.base_url)
    server = f"{url.scheme}://{url.netloc}"
    provider = str(getattr(cfg, "provider", "openai"))
    out: list[Check] = []
    key = ""
    if cfg.api_key_env:
        key = ctx.env.get(cfg.api_key_env, "")
        if key:
            out.append(_pass("model key", f"{cfg.api_key_env} is set ([llm] api_key_env)"))
        else:
            out.append(_fail("model key", f"{cfg.api_key_env} is not set ([llm] api_key_env names it)",
                             f"export {cfg.api_key_env}=... (the key is read from there, never from a file)"))
    # The settings in force name the server; a workspace's base_url is in force only once trusted.
    named_by_workspace = ctx.settings.origin("llm", "base_url").source == WORKSPACE
    send_key = bool(key) and (ctx.settings.trusted or not named_by_workspace)
    headers: dict[str, str] = {}
    if send_key:
        if provider == "anthropic":
            headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        else:
            headers = {"Authorization": f"Bearer {key}"}
    try:
        code, body = fetch(cfg.base_url.rstrip("/") + "/models", headers)
    except Exception as exc:  # httpx's errors and anything under them: one line naming the server
        reason = shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        out.insert(0, _fail("model server", f"{shown(server)} is unreachable ({reason})",
                            "start the server, or fix [llm] base_url (perfd config shows where it is set)"))
        return out
    out.insert(0, _pass("model server", f"{shown(server)} answers (HTTP {code})"))
    if code in (401, 403):
        out.append(_fail("model", f"{shown(server)} refused the key (HTTP {code}) listing its models",
                         f"check the key in {cfg.api_key_env or '[llm] api_key_env'}"))
    elif code != 200:
        out.append(_skip("model", f"{shown(cfg.model)}: {shown(server)} offers no models list (HTTP {code})"))
    else:
        ids = _model_ids(body)
        if ids is None:
            out.append(_skip("model", f"{shown(cfg.model)}: the models list of {shown(server)} is not readable"))
        elif cfg.model in ids:
            out.append(_pass("model", f"{shown(cfg.model)} is in {shown(server)}'s models list"))
        else:
            some = ", ".join(shown(i) for i in sorted(ids)[:8]) or "none"
            out.append(_fail("model", f"{shown(cfg.model)} is not in {shown(server)}'s models list ({some})",
                             "set [llm] model to one the server has"))
    return out


def _model_ids(body: bytes) -> set[str] | None:
    try:
        got = json.loads(body)
    except ValueError:
        return None
    items = got.get("data", got.get("models")) if isinstance(got, dict) else None
    if not isinstance(items, list):
        return None
    ids = set()
    for m in items:
        if isinstance(m, dict):
            for k in ("id", "name", "model"):
                if isinstance(m.get(k), str):
                    ids.add(str(m[k]).removeprefix("models/"))
    return ids


def check_redis(ctx: Context) -> Check:
    if ctx.settings is None or not ctx.settings.table("team"):
        return _skip("team Redis", "no [team] set")
    from perfd.llm import LLMConfigError
    from perfd.llm.team_config import load_team_config, redact_url

    try:
        team = load_team_config(ctx.settings.table("team"), {})
    except LLMConfigError as exc:
        return _fail("team Redis", shown(str(exc)), "fix [team] (perfd config shows where each is set)")
    if team is None:
        return _skip("team Redis", "no [team] redis_url")
    where = redact_url(team.redis_url)
    password = ctx.env.get(team.redis_password_env, "") if team.redis_password_env else None
    if team.redis_password_env and not password:
        return _fail("team Redis", f"{team.redis_password_env} is not set ([team] redis_password_env)",
                     f"export {team.redis_password_env}=...")
    try:
        import redis

        client = redis.Redis.from_url(team.redis_url, password=password or None, socket_timeout=team.timeout_s,
                                      socket_connect_timeout=team.timeout_s)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # redis's errors and the socket's under them
        return _fail("team Redis", f"{shown(where)} is unreachable ({shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)})",
                     f"start Redis, or fix [team] redis_url (fail = \"{team.fail}\" meanwhile)")
    return _pass("team Redis", f"{shown(where)} answers")


def check_extension(ctx: Context) -> Check:
    found = []
    for rel in EXTENSION_DIRS:
        folder = os.path.join(ctx.home, rel)
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for n in names:
            if not n.lower().startswith(EXTENSION_ID + "-"):
                continue
            try:
                with open(os.path.join(folder, n, "package.json"), encoding="utf-8") as f:
                    version = str(json.load(f).get("version", "?"))
            except (OSError, ValueError, AttributeError):
                version = n[len(EXTENSION_ID) + 1:]
            found.append(f"{shown(version)} ({shown(os.path.join(folder, n))})")
    if not found:
        return _skip("editor extension", "not installed (optional: README, Editors)")
    return _pass("editor extension", "; ".join(found))


def run_checks(root_option: str | None, cwd: str, *, find_root: Callable[[str | None, str], str],
               engine_for: Callable[[str], Engine], env: Mapping[str, str] | None = None,
               home: str | None = None, fetch: Fetch = _get) -> Report:
    """Every check, in order; `find_root` and `engine_for` are the CLI's (perfd.app.commands)."""
    ctx = Context(root_option, cwd, os.environ if env is None else env, home or os.path.expanduser("~"),
                  find_root=find_root, engine_for=engine_for)
    checks = [check_version(ctx), check_workspace(ctx), check_settings(ctx), check_daemon(ctx),
              check_watcher(ctx), *check_model(ctx, fetch), check_redis(ctx), check_extension(ctx)]
    return Report(ok=not any(c.status == "fail" for c in checks), checks=checks)


_MARK = {"pass": "ok  ", "fail": "FAIL", "skip": "--  "}


def render(report: Report) -> str:
    lines = []
    for c in report.checks:
        line = f"{_MARK[c.status]} {c.name}: {c.detail}"
        if c.fix:
            line += f" -> {c.fix}"
        lines.append(line)
    failed = sum(c.status == "fail" for c in report.checks)
    lines.append("all checks pass" if report.ok else f"{failed} check{'s' * (failed != 1)} failed")
    return "\n".join(lines) + "\n"
