"""An OpenAI-compatible chat-completions stand-in on a real 127.0.0.1 socket.

Plain asyncio streams (HTTP/1.1, keep-alive, chunked SSE), so the client under
test goes through its real pool, real TCP and real parsing. The server can:
add latency, answer 429 with Retry-After, fail with 5xx, stream slowly, drop
connections (before the answer or mid-stream), and it counts TCP connections,
requests, concurrency and tokens with arrival times.

Two ways to run it:
  * in-process: `with FakeServer() as server:` runs its own event loop in a
    thread; tests read `server.records` etc. directly;
  * standalone: `python fakeserver.py [--port 0]` prints "PORT <n>" and is
    controlled over HTTP (POST /_control, GET /_stats, POST /_reset); the
    benchmark uses this so the server has its own process (and core).

It always stops itself after `max_lifetime_s` so a crashed test run cannot
leave it behind.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


@dataclass
class Record:
    seq: int
    arrival: float  # time.monotonic() when the request was fully read
    conn: int
    path: str
    body: dict[str, Any]
    authorization: str | None
    stream: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    status: int = 200
    action: str = "ok"
    first_chunk_wall: float | None = None  # time.time() once the first content chunk is handed to the socket
    headers: dict[str, str] = field(default_factory=dict)  # as received, names lower-cased
    query: str = ""  # after the "?" of the request line

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Settings:
    latency_s: float = 0.0  # before answering (or before the first chunk)
    stream_delay_s: float = 0.0  # between stream chunks
    chunks: int = 4  # chunks a streamed reply is cut into
    reply_chars: int | None = None  # fixed reply length instead of an echo
    include_usage: bool = True  # final usage chunk when stream_options asks
    rate_headers: dict[str, str] = field(default_factory=dict)  # added to every 200
    require_key: str | None = None  # answer 401 unless "Bearer <key>"
    # Delay before a NEW connection is served: stands in for the TCP + TLS
    # handshake round trips to a hosted API, which loopback does not have.
    connect_delay_s: float = 0.0


class FakeServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, max_lifetime_s: float = 120.0) -> None:
        self.host = host
        self.port = port
        self.max_lifetime_s = max_lifetime_s
        self.settings = Settings()
        self._script: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self.records: list[Record] = []
        self.connections_opened = 0
        self.connections_open = 0
        self.max_connections_open = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed_by_client = 0
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- control -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def script(self, *actions: dict[str, Any]) -> None:
        """Queue per-request actions, used by the next requests in order:
        {"status": 429, "headers": {...}}, {"status": 500}, {"drop": "before"},
        {"drop": "mid", "after_chunks": 1}, {"delay": 0.2}, {"stall": 5}."""
        with self._lock:
            self._script.extend(actions)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.records = []
            self.settings = Settings()
            self.connections_opened = 0
            self.max_connections_open = self.connections_open
            self.max_in_flight = self.in_flight
            self.closed_by_client = 0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "connections_opened": self.connections_opened,
                "connections_open": self.connections_open,
                "max_connections_open": self.max_connections_open,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "closed_by_client": self.closed_by_client,
                "requests": [
                    {"seq": r.seq, "arrival": r.arrival, "conn": r.conn, "stream": r.stream, "status": r.status,
                     "action": r.action, "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                     "first_chunk_wall": r.first_chunk_wall}
                    for r in self.records
                ],
            }

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> FakeServer:
        self._thread = threading.Thread(target=self._thread_main, name="fake-llm-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(10)

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start())
            self._ready.set()
            loop.call_later(self.max_lifetime_s, loop.stop)
            loop.run_forever()
        finally:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        """Standalone mode: serve until max_lifetime_s."""
        self._loop = asyncio.get_running_loop()
        await self._start()
        print(f"PORT {self.port}", flush=True)
        try:
            await asyncio.wait_for(asyncio.Event().wait(), self.max_lifetime_s)
        except asyncio.TimeoutError:
            pass

    # -- HTTP --------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections_opened += 1
            conn = self.connections_opened
            self.connections_open += 1
            self.max_connections_open = max(self.max_connections_open, self.connections_open)
            connect_delay = self.settings.connect_delay_s
        try:
            if connect_delay:
                await asyncio.sleep(connect_delay)
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    with self._lock:
                        self.closed_by_client += 1
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                keep = await self._handle(method, path, headers, body, reader, writer, conn)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            with self._lock:
                self.closed_by_client += 1
        except asyncio.CancelledError:
            pass  # the server is stopping
        finally:
            with self._lock:
                self.connections_open -= 1
            try:
                writer.close()
            except Exception:
                pass

    async def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes,
                      reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: int) -> bool:
        if path.startswith("/_"):
            return await self._control(method, path, body, writer)
        path, _, query = path.partition("?")
        anthropic = path.rstrip("/").endswith("/v1/messages")  # Anthropic's Messages API
        if not (path.rstrip("/").endswith("/chat/completions") or anthropic) or method != "POST":
            await self._send_json(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            await self._send_json(writer, 400, {"error": {"message": "body is not JSON"}})
            return True
        with self._lock:
            self._seq += 1
            seq = self._seq
            action = self._script.popleft() if self._script else {}
            settings = self.settings
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        record = Record(seq=seq, arrival=time.monotonic(), conn=conn, path=path, body=payload,
                        authorization=headers.get("authorization"), stream=bool(payload.get("stream")),
                        headers=dict(headers), query=query)
        with self._lock:
            self.records.append(record)
        try:
            return await self._answer(record, payload, action, settings, reader, writer)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer(self, record: Record, payload: dict[str, Any], action: dict[str, Any],
                      settings: Settings, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        delay = action.get("delay", settings.latency_s)
        if action.get("stall"):
            delay = action["stall"]
        if action.get("drop") == "before":
            record.action, record.status = "drop", 0
            if delay:
                await asyncio.sleep(delay)
            writer.transport.abort()
            return False
        if delay:
            await asyncio.sleep(delay)
        status = int(action.get("status", 200))
        text = orjson.dumps(payload.get("messages") or [])
        if b"!fail" in text and not action:
            # Content-addressed failure: lets a test pick which of many parallel jobs fails.
            status, action = 400, {"body": {"error": {"message": "this prompt asked to fail"}}}
        if settings.require_key is not None and record.authorization != f"Bearer {settings.require_key}":
            status = 401
            action = {"body": {"error": {"message": f"Incorrect API key provided: {record.authorization}"}}}
        if status != 200:
            record.status, record.action = status, f"status {status}"
            await self._send_json(writer, status, action.get("body", {"error": {"message": f"scripted {status}"}}),
                                  action.get("headers", {}))
            return True

        messages = payload.get("messages") or []
        prompt_chars = sum(len(m.get("content") or "") for m in messages if isinstance(m.get("content"), str))
        last = next((m.get("content") for m in reversed(messages) if isinstance(m.get("content"), str)), "")
        reply = action.get("reply")
        if reply is None:
            reply = ("x" * settings.reply_chars if settings.reply_chars is not None
                     else f"reply#{record.seq} to {last[:40]}")
        max_tokens = payload.get("max_tokens")
        if isinstance(max_tokens, int):
            reply = reply[: max_tokens * 4]
        record.prompt_tokens = estimate_tokens("x" * prompt_chars)
        record.completion_tokens = estimate_tokens(reply)
        usage = {"prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
                 "total_tokens": record.tokens}
        extra_headers = {**settings.rate_headers, **action.get("headers", {})}
        model = payload.get("model", "fake")
        if record.path.rstrip("/").endswith("/v1/messages"):
            return await self._answer_anthropic(record, model, reply, action, settings, writer, extra_headers)
        if not record.stream:
            await self._send_json(writer, 200, {
                "id": f"cmpl-{record.seq}", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": usage,
            }, extra_headers)
            return True

        writer.write(self._head(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked",
                                      "cache-control": "no-cache", **extra_headers}))
        n = max(1, int(action.get("chunks", settings.chunks)))
        size = max(1, math.ceil(len(reply) / n))
        pieces = [reply[i:i + size] for i in range(0, len(reply), size)] or [""]
        stream_delay = action.get("stream_delay", settings.stream_delay_s)
        drop_mid = action.get("drop") == "mid"
        after = int(action.get("after_chunks", 1))
        if drop_mid:
            record.action = "drop mid-stream"
        writer.write(self._chunk(b": keep-alive comment\n\n"))
        for i, piece in enumerate(pieces):
            if drop_mid and i >= after:
                await writer.drain()
                writer.transport.abort()
                return False
            if i and stream_delay:
                await writer.drain()
                if await self._client_left(reader, stream_delay):
                    return False
            event = {"id": f"cmpl-{record.seq}", "object": "chat.completion.chunk", "model": model,
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            writer.write(self._chunk(b"data: " + orjson.dumps(event) + b"\n\n"))
            if i == 0:
                await writer.drain()  # the first piece is on its way: an editor's first-token clock starts here
                record.first_chunk_wall = time.time()
        if drop_mid:
            await writer.drain()
            writer.transport.abort()
            return False
        final = {"id": f"cmpl-{record.seq}", "object": "chat.completion.chunk", "model": model,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        writer.write(self._chunk(b"data: " + orjson.dumps(final) + b"\n\n"))
        if settings.include_usage and (payload.get("stream_options") or {}).get("include_usage"):
            writer.write(self._chunk(b"data: " + orjson.dumps({"choices": [], "usage": usage, "model": model}) + b"\n\n"))
        writer.write(self._chunk(b"data: [DONE]\n\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _answer_anthropic(self, record: Record, model: str, reply: str, action: dict[str, Any],
                                settings: Settings, writer: asyncio.StreamWriter,
                                extra_headers: dict[str, str]) -> bool:
        """The answer as Anthropic's Messages API gives it (plain, or its streaming events)."""
        cache_read = int(action.get("cache_read", 0))
        usage = {"input_tokens": record.prompt_tokens - cache_read, "output_tokens": record.completion_tokens,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": cache_read}
        if not record.stream:
            await self._send_json(writer, 200, {
                "id": f"msg_{record.seq}", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn", "usage": usage,
            }, extra_headers)
            return True
        writer.write(self._head(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked",
                                      "cache-control": "no-cache", **extra_headers}))

        def event(name: str, data: dict[str, Any]) -> bytes:
            return self._chunk(f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n")

        start_usage = {**usage, "output_tokens": 1}
        writer.write(event("message_start", {"message": {"id": f"msg_{record.seq}", "type": "message",
                                                          "role": "assistant", "model": model, "content": [],
                                                          "usage": start_usage}}))
        writer.write(event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
        writer.write(event("ping", {}))
        n = max(1, int(action.get("chunks", settings.chunks)))
        size = max(1, math.ceil(len(reply) / n))
        for i in range(0, len(reply), size):
            writer.write(event("content_block_delta", {"index": 0,
                                                       "delta": {"type": "text_delta", "text": reply[i:i + size]}}))
        writer.write(event("content_block_stop", {"index": 0}))
        writer.write(event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                             "usage": {"output_tokens": record.completion_tokens}}))
        writer.write(event("message_stop", {}))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _client_left(self, reader: asyncio.StreamReader, delay: float) -> bool:
        """Sleep `delay`, noticing at once if the client closes the connection meanwhile."""
        try:
            data = await asyncio.wait_for(reader.read(1), delay)
        except asyncio.TimeoutError:
            return False
        except ConnectionError:
            data = b""
        if data:  # a pipelined request: not something a pooled client does mid-stream
            raise RuntimeError("unexpected bytes from the client during a stream")
        with self._lock:
            self.closed_by_client += 1
        return True

    async def _control(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if path == "/_stats":
            await self._send_json(writer, 200, self.stats())
        elif path == "/_reset":
            self.reset()
            await self._send_json(writer, 200, {"ok": True})
        elif path == "/_control" and method == "POST":
            data = orjson.loads(body or b"{}")
            with self._lock:
                for key, value in (data.get("settings") or {}).items():
                    setattr(self.settings, key, value)
            self.script(*(data.get("script") or []))
            await self._send_json(writer, 200, {"ok": True})
        else:
            await self._send_json(writer, 404, {"error": {"message": "unknown control path"}})
        return True

    @staticmethod
    def _head(status: int, headers: dict[str, str]) -> bytes:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout",
                  409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
                  502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @staticmethod
    def _chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, data: Any,
                         headers: dict[str, str] | None = None) -> None:
        body = orjson.dumps(data)
        writer.write(self._head(status, {"content-type": "application/json", "content-length": str(len(body)),
                                         **(headers or {})}) + body)
        await writer.drain()


def max_in_window(times: list[float], weights: list[int], window_s: float) -> int:
    """The largest weighted count of events in any half-open window [t, t + window_s)."""
    events = sorted(zip(times, weights))
    best = 0
    total = 0
    lo = 0
    for hi in range(len(events)):
        total += events[hi][1]
        while events[hi][0] - events[lo][0] >= window_s:
            total -= events[lo][1]
            lo += 1
        best = max(best, total)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-lifetime", type=float, default=600.0)
    args = parser.parse_args()
    server = FakeServer(host=args.host, port=args.port, max_lifetime_s=args.max_lifetime)
    try:
        asyncio.run(server.serve_forever())
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
