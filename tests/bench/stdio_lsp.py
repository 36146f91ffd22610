"""A minimal synchronous LSP client over a subprocess's pipes, for the benchmarks that time whole servers."""

from __future__ import annotations

import json
import subprocess


class StdioLSP:
    """A minimal synchronous LSP client over a subprocess's pipes (Content-Length framing)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.next_id = 0

    def send(self, method: str, params: object, *, request: bool = True) -> object:
        msg: dict[str, object] = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            msg["id"] = self.next_id
        body = json.dumps(msg).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        if not request:
            return None
        while True:
            reply = self.read()
            if reply.get("id") == self.next_id and "method" not in reply:
                return reply.get("result")

    def read(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        length = 0
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError("server closed")
            if line in (b"\r\n", b"\n"):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        out: dict[str, object] = json.loads(self.proc.stdout.read(length))
        return out

    def close(self) -> None:
        try:
            self.send("shutdown", None)
            self.send("exit", None, request=False)
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
