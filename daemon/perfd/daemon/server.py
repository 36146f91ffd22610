"""The perfd daemon's life cycle: one engine per workspace root, served over a Unix socket (JSON-RPC 2.0).

Take an flock on <hash>.lock in the runtime folder (a second daemon for the
same root refuses to start), remove a stale socket (holding the lock proves it
is stale), bind the socket 0600 (folder 0700), write the pid file, then serve
until SIGTERM/SIGINT, `shutdown`, the idle timeout, the workspace folder
going away, or the memory cap. State files (socket, pid file) are removed
before the process stops answering; the lock file stays (removing flock files
races). Connections are perfd.daemon.connections; the methods they call are
perfd.daemon.methods; the warm-up is perfd.daemon.warmup; file changes come
from perfd.runtime.watcher. Each is given what it uses (perfd.daemon.host),
never the Daemon.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import logging.handlers
import os
import signal
import sys
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import msgspec

import perfd
from perfd import exitcodes
from perfd.runtime import heap
from perfd.daemon.connections import Connections, limits_for, raise_open_file_limit
from perfd.daemon.host import EditorSession, ServeLsp, Subscribers, WarmSignals
from perfd.daemon.methods import SHAPING, Methods
from perfd.daemon.peer import PeerCheck, choose
from perfd.paths import UnsafeFolder, open_private, replace_private
from perfd.runtime.stats import Stats, rss_bytes, snapshot
from perfd.runtime.verify import Verifier
from perfd.runtime.watcher import Drained, Watcher
from perfd.daemon.warmup import WarmUp
from perfd.app.stats_view import validation_line
from perfd.engine.engine import Engine
from perfd.settings.live import LiveSettings
from perfd.settings.resolve import Settings
from perfd.settings.schema import DaemonSettings
from perfd.settings.sources import SettingsError
from perfd.wire import protocol as P
from perfd.wire.rendezvous import clear_start_failure, record_start_failure, state_paths

if TYPE_CHECKING:
    from perfd.llm import LLMClient

log = logging.getLogger("perfd.daemon")
MAX_MODEL_CLIENTS = 4  # clients kept for distinct model settings (the daemon's own, and callers' PERFD_*)
STORE_EVERY_S = 300.0  # the parse store is rewritten at most this often (and at stop) when something was parsed
_enc = msgspec.json.Encoder()
RE_WATCH_S = 1.0  # how often a daemon with nothing to watch looks again


class AlreadyRunning(Exception):
    pass


class NoPeerCheck(Exception):
    """This system cannot say who connects to a Unix socket: the daemon must not serve one."""


class Daemon:
    def __init__(self, root: str, *, peer_check: PeerCheck | None = None) -> None:
        if peer_check is None:
            found = choose()  # once per daemon: every connection is checked the same way
            if isinstance(found, str):
                raise NoPeerCheck(found)
            peer_check = found
        self.peer_check = peer_check
        self.root = os.path.realpath(root)
        self.paths = state_paths(self.root)
        # The settings in force, seen again before every answer (perfd.settings.live): a model changed
        # in perfd.toml (and trusted) is used by the next call; a change to what shapes the daemon
        # itself ([workspace], [cache], [daemon]) makes it hand over to a new one (see Methods).
        self.settings = LiveSettings(self.root)
        try:
            started: Settings | None = self.settings.current()
        except SettingsError as exc:  # every request answers it (exit 1) until the file is fixed
            log.error("settings: %s", exc)
            started = None
        self.started_settings = started.fingerprint(*SHAPING) if started is not None else ""
        daemon_cfg = started.daemon if started is not None else DaemonSettings()
        self.engine = Engine(self.root, settings=started) if started is not None else Engine(self.root, config={})
        self.idle_timeout_s = daemon_cfg.idle_timeout_s
        self.max_rss_mb = daemon_cfg.max_rss_mb
        self.metrics_setting: object = daemon_cfg.metrics_addr  # opt-in /metrics; None: off (beyond loopback: trusted)
        self.metrics_addr: str | None = None  # where /metrics serves, once bound
        self.metrics_error: str | None = None  # why it does not (shown by perfd stats and logged)
        self.stats = Stats()
        self.subscribers = Subscribers()
        self.lsp_sessions: set[EditorSession] = set()  # one per editor connection (perfd.lsp.session adds it)
        self.watching = False
        self.watcher: Watcher | None = None  # once the warm-up has read every file (see _watch)
        # What raises no event (hard links written elsewhere, mmap, restored mtimes): a stat pass now and then.
        self.verifier = Verifier(self.engine.verification, interval_s=daemon_cfg.verify_interval_s,
                                 on_found=self.files_changed)
        self.stop_reason = ""
        self._lock_fd = -1
        self._sock_id = (0, 0)
        self._llm: LLMClient | None = None  # the client of the daemon's own settings (its stats are shown)
        # Model clients by the settings they were made for (see llm()): a few, each shared by every caller
        # with those settings; one evicted is closed.
        self._llms: dict[str, LLMClient | None] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._stop_event: anyio.Event | None = None
        self.signals = WarmSignals()  # set by the warm-up; requests and the watcher wait on them
        methods = Methods(self.root, self.engine, stats=self, subscribers=self.subscribers, warm=self.signals,
                          stop=self, llm=self.llm, watching=lambda: self.watching, settings=self.settings,
                          started_settings=self.started_settings)
        self.serving = Connections(methods.table(), peer_check=peer_check, stats=self.stats,
                                   subscribers=self.subscribers, stop=self, serve_editor=self.serve_editor,
                                   limits=limits_for(daemon_cfg, open_files=raise_open_file_limit()))
        store_path = os.path.join(os.path.dirname(self.paths.log), os.path.basename(self.paths.log)[:-4] + ".parse")
        self.warm_up = WarmUp(self.engine, store_path=store_path, answers_path=store_path[:-len(".parse")] + ".answers",
                              signals=self.signals, open_connections=lambda: self.serving.open)

    # -- life cycle ----------------------------------------------------------------

    def acquire_lock(self) -> None:
        fd = open_private(self.paths.lock, os.O_RDWR)  # never through a planted symlink
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self.root) from None
        self._lock_fd = fd

    def clear_state(self) -> None:
        """Remove socket and pid file (we hold the lock, so they are ours)."""
        for path in (self.paths.sock, self.paths.pid):
            if path == self.paths.sock and self._sock_id != (0, 0) and not self.socket_is_ours():
                continue  # deleted under us, or another file now: not ours to remove
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def socket_is_ours(self) -> bool:
        """Whether the socket file still is the one this daemon bound (deleted or replaced: no)."""
        try:
            st = os.lstat(self.paths.sock)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._sock_id

    def _write_pid(self) -> None:
        replace_private(self.paths.pid, f"{os.getpid()}\n".encode())  # O_EXCL temporary, then rename

    async def run(self) -> None:
        self.acquire_lock()
        self.clear_state()  # a leftover of a daemon killed with -9
        old = os.umask(0o177)
        try:
            listener = await anyio.create_unix_listener(self.paths.sock)
        finally:
            os.umask(old)
        os.chmod(self.paths.sock, 0o600)  # the socket we just bound, in our checked folder
        st = os.lstat(self.paths.sock)
        self._sock_id = (st.st_dev, st.st_ino)
        self._write_pid()
        clear_start_failure(self.paths)
        self._stop_event = anyio.Event()
        lim = self.serving.limits
        log.info("perfd %s daemon pid %d serving %s on %s (idle timeout %.0f s, memory cap %s, peers checked"
                 " with %s, at most %d connections, each closed after %g s idle)",
                 perfd.__version__, os.getpid(), self.root, self.paths.sock, self.idle_timeout_s,
                 f"{self.max_rss_mb:g} MB" if self.max_rss_mb > 0 else "off", self.peer_check.name,
                 lim.max_connections, lim.idle_s)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._signals)
                tg.start_soon(self._housekeeping)
                tg.start_soon(self._watch)
                tg.start_soon(self._verify)
                tg.start_soon(self.serving.accept, listener, tg)
                if self.metrics_setting is not None:
                    tg.start_soon(self._serve_metrics)
                tg.start_soon(self.warm_up.run)
        finally:
            self.clear_state()
            self.warm_up.save_stores_now()
            await self.close_llm()
            log.info("stopped (%s)", self.stop_reason or "cancelled")

    def stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
            log.info("stopping: %s", reason)
        self.clear_state()
        if self._stop_event is not None:
            self._stop_event.set()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _serve_metrics(self) -> None:
        """`[daemon] metrics_addr`: /metrics over HTTP. A bad or busy address never stops the daemon:
        it keeps serving its socket and says why in `perfd stats` and the log."""
        from perfd.app.stats_view import render_prometheus
        from perfd.daemon import metrics_http

        try:
            host, port = metrics_http.parse_addr(self.metrics_setting)
            listener = await anyio.create_tcp_listener(local_host=host, local_port=port, reuse_port=False)
        except metrics_http.AddressError as exc:
            self.metrics_error = f"{exc} (in [daemon] of perfd.toml)"
        except OSError as exc:
            self.metrics_error = f"cannot listen on {self.metrics_setting}: {exc.strerror or exc}"
        if self.metrics_error is not None:
            log.error("metrics endpoint off: %s", self.metrics_error)
            return
        self.metrics_addr = metrics_http.display(host, port)
        if not metrics_http.is_loopback(host):
            log.warning("metrics endpoint on %s, reachable beyond this machine (as metrics_addr asks)",
                        self.metrics_addr)
        log.info("metrics endpoint: http://%s/metrics", self.metrics_addr)
        await metrics_http.serve(listener, lambda: render_prometheus(self.snapshot()))

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
            async for signum in sigs:
                self.stop(f"signal {signal.Signals(signum).name}")
                return

    async def _housekeeping(self) -> None:
        idle = self.idle_timeout_s  # 0: never stop for being idle
        period = max(0.05, min(1.0, idle / 4)) if idle > 0 else 1.0
        while True:
            await anyio.sleep(period)
            if idle > 0 and self.serving.open == 0 and time.monotonic() - self.serving.last_activity > idle:
                self.stop(f"idle for {self.idle_timeout_s:g} s")
                return
            if not os.path.isdir(self.root):
                self.stop("the workspace folder is gone")  # nothing left to serve
                return
            if not self.socket_is_ours():
                # Deleted (or replaced) under us: no client can reach this daemon any more, and
                # the lock it holds would keep a new one from starting. Exit; the next call starts one.
                self.stop("the socket file was removed")
                return
            if self.max_rss_mb > 0 and rss_bytes() > self.max_rss_mb * 1048576:
                self.stop(f"memory {rss_bytes() / 1048576:.1f} MB over max_rss_mb = {self.max_rss_mb:g} MB")
                return
            heap.settle_if_grown()  # after a lazy import (pygls, httpx): see perfd.runtime.heap
            if self.signals.warmed.is_set() and time.monotonic() - self.warm_up.saved_at > STORE_EVERY_S:
                await self.warm_up.save_stores()

    # -- file changes ----------------------------------------------------------------

    async def _watch(self) -> None:
        """Watch the folders plans are read from, once the warm-up has read every file (and answered those
        who waited for it).

        Not before: inotify reports every open and close of a watched file, and
        the watcher's thread woke for each of the tens of thousands the cold
        parse makes, taking the core from the parse (a new daemon was twice as
        slow as --no-daemon). What changes meanwhile is not missed: entries read
        before the watcher started are stat-checked once (Engine.trust_watcher).
        """
        from perfd.runtime.watcher import Watcher

        await self.signals.parsed.wait()

        def watching(on: bool) -> None:
            self.watching = on
            self.trust_watcher()
            self.signals.watch_ready.set()

        delay = RE_WATCH_S
        try:
            while True:
                self.watcher = watcher = Watcher(self.engine.watch_folders(), on_drained=self.drained,
                                                 root=self.root)
                await watcher.run(self.files_changed, stop_event=self._stop_event, on_state=watching)
                self.signals.watch_ready.set()
                if self._stop_event is None or self._stop_event.is_set():
                    return
                # Nothing to watch, or the watched folder went (a checkout, a move): meanwhile answers are
                # checked by stat; watch again once it is back (less often while it keeps failing).
                delay = RE_WATCH_S if watcher.came_up or not watcher.folders else min(60.0, delay * 2)
                await anyio.sleep(delay)
        finally:
            self.signals.watch_ready.set()

    async def _verify(self) -> None:
        await self.signals.watch_ready.wait()
        await self.verifier.run()

    def trust_watcher(self) -> None:
        """Tell the engine what the watcher vouches for now: the folders it watches, less those it could not,
        with its sync (read-your-writes); nothing at all when it cannot sync (see perfd.runtime.watcher)."""
        w = self.watcher
        if w is None or not w.synced:
            self.engine.trust_watcher(None)
            return
        unwatched = w.unwatched()
        self.engine.trust_watcher(w.watched_folders(), unwatched=unwatched, sync=w.sync)
        if unwatched:
            report = w.report()
            log.warning("%s", validation_line(report))

    def drained(self, d: Drained) -> None:
        """What the watcher took (before an answer, or as it came): the engine forgets exactly what changed.
        Synchronous: an answer that asked for the sync reads what this left."""
        self.stats.watcher_events += len(d.paths)
        if d.restart:  # an overflow, or the folders watched changed: every input is checked once more
            self.trust_watcher()
        if d.paths:
            self.engine.changed(sorted(d.paths))  # exactly these files and their folders' listings

    async def files_changed(self, paths: set[str]) -> None:
        """A debounced batch of what the watcher took: refresh the editors, tell subscribers which plans moved."""
        self.stats.watcher_batches += 1
        engine = self.engine
        self.refresh_editors(paths)
        for plan, changed in engine.plans_affected_by(paths).values():
            try:
                st = engine.plan_status(plan)
            except Exception:  # a half-written file: the next event or call fixes it
                log.exception("recomputing %s", plan.path)
                continue
            await self.notify("planChanged", P.PlanChanged(
                plan=st.plan, path=st.path, state=st.state, next=st.next, done=st.done, total=st.total,
                changed=sorted(changed)))

    def refresh_editors(self, paths: Collection[str] = ()) -> None:
        for session in list(self.lsp_sessions):
            try:
                session.refresh(paths)
            except Exception:
                log.exception("refreshing an editor session")

    async def notify(self, method: str, params: msgspec.Struct) -> None:
        if not self.subscribers:
            return
        await self.subscribers.post(_enc.encode(P.Notification(method=method, params=params)))

    # -- what the collaborators are given (see perfd.daemon.host) --------------------------------

    async def serve_editor(self, serve_lsp: ServeLsp, stream: anyio.abc.ByteStream, leftover: bytes) -> None:
        """One editor's LSP session on a connection that upgraded (perfd.lsp.session.serve_lsp)."""
        await serve_lsp(stream, leftover, self.engine, stats=self.snapshot, record=self.stats.record,
                        registry=self.lsp_sessions, llm=self.llm)

    def uptime(self) -> float:
        return self.stats.uptime()

    def snapshot(self) -> P.StatsSnapshot:
        """The one stats payload: `perfd stats`, the `stats` method and every editor's perfd/stats."""
        return snapshot(root=self.root, engine=self.engine, stats=self.stats, connections=self.serving.open,
                        subscribers=len(self.subscribers), sessions=len(self.lsp_sessions),
                        llm=self._llm.stats() if self._llm is not None else None,
                        watcher=self.watcher.report(verify=self.verifier.report()) if self.watcher else None,
                        metrics_addr=self.metrics_addr, metrics_error=self.metrics_error)

    async def refresh_team(self) -> None:
        """With [team], read the team's current window and spending from Redis before a stats answer."""
        if self._llm is not None:
            with anyio.move_on_after(0.5):  # a slow Redis costs stats a little freshness, not the answer
                await self._llm.refresh_team()

    def llm(self, variables: Mapping[str, str] | None = None, *, model: str | None = None) -> LLMClient | None:
        """The model client for the settings in force: the daemon's own, or a request's PERFD_* over them.

        Settings are seen again on every call (perfd.settings.live), so a model changed in
        perfd.toml and trusted is used by the very next call, and `PERFD_LLM_MODEL=... perfd run`
        by that run only. Every caller with the same settings shares one client (its pool, rate
        limit, breaker and response cache). API keys are read from the environment the daemon was
        started with, never from a caller's. None when no model is configured; LLMConfigError
        for unusable settings.
        """
        from perfd.llm import client_from_settings
        from perfd.llm.errors import LLMConfigError

        try:
            own, settings = self.settings.both(variables)
        except SettingsError as exc:
            raise LLMConfigError(str(exc)) from None
        tables = ("llm", "team", "models")
        key = self.settings.fingerprint(settings, *tables) + "\0" + settings.notice() + "\0" + (model or "")
        if key in self._llms:
            client = self._llms.pop(key)
            self._llms[key] = client  # the most recent last
        else:
            client = client_from_settings(self.root, settings, env=self.settings.env_for(variables), model=model)
            self._llms[key] = client
            while len(self._llms) > MAX_MODEL_CLIENTS:
                old = self._llms.pop(next(iter(self._llms)))
                if old is not None and old is not self._llm and self._tg is not None:
                    self._tg.start_soon(old.aclose)
        if model is None and self.settings.fingerprint(settings, *tables) == self.settings.fingerprint(own, *tables):
            self._llm = client  # the daemon's own settings' client: the one its stats show
        return client

    async def close_llm(self) -> None:
        clients = [c for c in self._llms.values() if c is not None]
        self._llm, self._llms = None, {}
        for llm in clients:
            with anyio.CancelScope(shield=True):
                try:
                    await llm.aclose()
                except Exception:
                    log.exception("closing the model client")


class _PrivateLog(logging.handlers.RotatingFileHandler):
    """The daemon's log, opened without following a symlink planted at its name."""

    def _open(self) -> io.TextIOWrapper:
        fd = open_private(self.baseFilename, os.O_WRONLY | os.O_APPEND)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8", errors="backslashreplace")


def setup_logging(path: str) -> None:
    """Every perfd logger of the daemon (perfd.daemon, perfd.llm's model-call warnings, perfd.lsp) to its log."""
    handler = _PrivateLog(path, maxBytes=1 << 20, backupCount=3)  # opened now: a failure is a reason to give
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s pid %(process)d %(name)s %(message)s"))
    top = logging.getLogger("perfd")
    top.addHandler(handler)
    top.setLevel(logging.INFO)
    top.propagate = False


def main(root: str) -> int:
    """Serve `root` in this process until stopped; exitcodes.ALREADY_RUNNING when a daemon already serves it."""
    os.umask(0o077)  # logs, pid file and socket stay private
    try:
        d = Daemon(root)
    except NoPeerCheck as exc:
        sys.stderr.write(f"perfd: the daemon will not serve: {exc}\n")
        return exitcodes.ERROR
    except OSError as exc:  # an untrusted runtime or state folder (UnsafeFolder), one that cannot be made
        sys.stderr.write(f"perfd: cannot start the daemon: {_reason(exc)}\n")
        return exitcodes.ERROR
    try:
        setup_logging(d.paths.log)
    except OSError as exc:  # a read-only state folder: clients read why instead of waiting for us
        reason = f"cannot write its log {d.paths.log}: {_reason(exc)}"
        sys.stderr.write(f"perfd: cannot start the daemon: {reason}\n")
        record_start_failure(d.paths, reason)
        return exitcodes.ERROR
    try:
        anyio.run(d.run)
    except AlreadyRunning:
        pid = ""
        try:
            with open(d.paths.pid) as f:
                pid = f.read().strip()
        except OSError:
            pass
        sys.stderr.write(f"perfd: a daemon already serves {d.root}" + (f" (pid {pid})" if pid else "") + "\n")
        return exitcodes.ALREADY_RUNNING
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.ENAMETOOLONG, errno.EACCES, errno.EROFS, errno.ELOOP) \
                or isinstance(exc, UnsafeFolder):
            reason = f"cannot serve on {d.paths.sock}: {_reason(exc)}"
            sys.stderr.write(f"perfd: {reason}\n")
            log.error("%s", reason)
            record_start_failure(d.paths, reason)
            return exitcodes.ERROR
        raise
    return exitcodes.OK


def _reason(exc: OSError) -> str:
    return exc.strerror if exc.strerror and not isinstance(exc, UnsafeFolder) else str(exc)
