"""A real redis-server per test (Unix socket, persistence off) and a slow loopback proxy in front of it.

`tests/setup-tools.sh` (run by the README's test command) installs Debian's
redis-server; a test that cannot find it is skipped with that reason.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time

import redis


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)), None)


class RedisServer:
    """`redis-server` on a Unix socket in `folder`, no TCP, no RDB, no AOF; stop() and start() again at will."""

    def __init__(self, folder: str, *, binary: str) -> None:
        self.folder = folder
        self.binary = binary
        self.socket_path = os.path.join(folder, "redis.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> RedisServer:
        os.makedirs(self.folder, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", "0", "--unixsocket", self.socket_path, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.folder, "--daemonize", "no",
             "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with self.client() as client:
                    if client.ping():
                        return self
            except (OSError, redis.RedisError):
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()  # killed, not shut down: what a crash looks like to the daemons
            proc.wait(10)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def client(self) -> redis.Redis:
        """A plain (blocking) client, for a test to look at the keys."""
        return redis.Redis(unix_socket_path=self.socket_path, socket_timeout=5)


class SlowProxy:
    """127.0.0.1:<port> -> the Redis socket, every chunk delayed by `delay_s` each way (a slow network)."""

    def __init__(self, target_socket: str, *, delay_s: float) -> None:
        self.target = target_socket
        self.delay_s = delay_s
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> SlowProxy:
        self._thread = threading.Thread(target=self._main, daemon=True, name="slow-redis-proxy")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.target)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await asyncio.sleep(self.delay_s)
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
