"""The daemon under attack, measured: connections held at once, a light request's p99 beside the heaviest one.

    python tests/bench/bench_attack.py [--sizes 1000,5000,10000] [--light 400] [--fuzz 10000]

1. Connections held open at once while the daemon still answers: at each size,
   open that many idle connections (the bench raises its own soft open-file
   limit), then time `cli status` on a new one beside the idle figure; then,
   with a configured cap, one connection past it (a TOO_BUSY refusal, the
   daemon still answering). Goal: at least 10,000 held, or the cap reached with
   a clear refusal; never an exit.
2. p99 of a light request (`cli status`, what the thin client sends) while
   another client sends the heaviest allowed request back to back: a `cli`
   request of the largest frame (1 MiB) with the most arguments perfd takes
   (1024), beside the same light requests on an idle daemon. Goal: at most 3x.
3. (--fuzz N) the protocol fuzz test with N cases (tests/daemon/test_fuzz_protocol.py).

Loopback only: a Unix socket in a private temporary folder. Prints tables; a
goal not met says MISSED.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "daemon"))
sys.path.insert(0, os.path.join(REPO, "tests", "daemon"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from conftest import make_workspace  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def read_frame(s: socket.socket) -> bytes:
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    (n,) = struct.unpack(">I", head)
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


class Daemon:
    def __init__(self, base: str, root: str, **env: str) -> None:
        self.env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(base, "r"),
                        PERFD_STATE_DIR=os.path.join(base, "s"), **env)
        self.root = root
        os.environ.update(PERFD_RUNTIME_DIR=self.env["PERFD_RUNTIME_DIR"], PERFD_STATE_DIR=self.env["PERFD_STATE_DIR"])
        from perfd.wire.rendezvous import state_paths

        self.sock = state_paths(root).sock
        self.proc = subprocess.Popen([sys.executable, "-m", "perfd", "daemon", "run", "--root", root], env=self.env,
                                     cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 15
        while time.monotonic() < end:
            try:
                self.call(b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("the daemon did not start")

    def connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(self.sock)
        return s

    def call(self, body: bytes, s: socket.socket | None = None) -> bytes:
        own = s is None
        conn = s or self.connect()
        try:
            conn.sendall(frame(body))
            return read_frame(conn)
        finally:
            if own:
                conn.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def light_body(root: str) -> bytes:
    import json

    return json.dumps({"jsonrpc": "2.0", "id": 7, "method": "cli",
                       "params": {"argv": ["status"], "cwd": root, "raw": True}}).encode()


def heavy_bodies(root: str) -> dict[str, bytes]:
    """The heaviest requests perfd allows, each as large or as costly as a frame and MAX_ARGS let it be."""
    import json

    from perfd.app.commands import MAX_ARGS
    from perfd.wire.ipc import MAX_FRAME

    def cli(argv: list[str]) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": 9, "method": "cli",
                           "params": {"argv": argv, "cwd": root, "raw": True}}).encode()

    per = (MAX_FRAME - 4096) // MAX_ARGS
    return {
        f"cli, {MAX_ARGS} x --json (argparse's worst)": cli(["status"] + ["--json"] * (MAX_ARGS - 1)),
        f"cli, {MAX_ARGS} args, 1 MiB frame": cli(["generate"] + ["x" * per] * (MAX_ARGS - 1)),
        "generate, a 1 MiB plan name": json.dumps({"jsonrpc": "2.0", "id": 9, "method": "generate", "params": {
            "plan": "@" + "y" * (MAX_FRAME - 200)}}).encode(),
        "1 MiB that is not JSON": b"[" * (MAX_FRAME - 16),
    }


HAMMER = """
import socket, struct, sys
body = open(sys.argv[2], "rb").read()
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
n = 0
def read():
    head = b""
    while len(head) < 4:
        c = s.recv(4 - len(head)); assert c; head += c
    k = struct.unpack(">I", head)[0]; got = 0
    while got < k:
        c = s.recv(min(1 << 20, k - got)); assert c; got += len(c)
while True:
    s.sendall(struct.pack(">I", len(body)) + body); read(); n += 1
    sys.stdout.write("%d\\n" % n); sys.stdout.flush()
"""


def time_light(d: Daemon, body: bytes, n: int, *, min_s: float = 0.0) -> list[float]:
    s = d.connect()
    out: list[float] = []
    end = time.monotonic() + min_s
    try:
        while len(out) < n or time.monotonic() < end:
            t = time.perf_counter()
            r = d.call(body, s)
            out.append(time.perf_counter() - t)
            assert r.startswith(b"RAW 0 "), r[:200]
    finally:
        s.close()
    return out


def connections(base: str, root: str, sizes: list[int]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass
    mine = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    print(f"\n1. connections held open at once (this process may open {mine}; the daemon raises its own limit)")
    d = Daemon(base, root)
    body = light_body(root)
    try:
        idle = time_light(d, body, 200)
        print(f"{'held':>7} {'answered':>9} {'p50 ms':>7} {'x idle':>7} {'p99 ms':>7} {'x idle':>7} "
              f"{'daemon RSS MB':>14} {'same pid':>9}")
        print(f"{0:>7} {'yes':>9} {statistics.median(idle) * 1e3:>7.2f} {1:>7.2f} {pct(idle, .99) * 1e3:>7.2f} "
              f"{1:>7.2f} {d.rss_mb():>14.1f} {'yes':>9}")
        held: list[socket.socket] = []
        best = 0
        for n in sizes:
            fails = 0
            while len(held) < n:
                try:
                    held.append(d.connect())
                    fails = 0
                except BlockingIOError:  # the listen backlog is full: let the daemon accept
                    fails += 1
                    if fails > 500:
                        print(f"   backlog stayed full at {len(held)}")
                        break
                    time.sleep(0.01)
                except OSError as exc:
                    print(f"   stopped opening at {len(held)}: {exc}")
                    break
            time.sleep(0.5)
            try:
                lat = time_light(d, body, 100)
                ok = "yes"
            except (OSError, AssertionError) as exc:
                lat, ok = [float("nan")], f"NO ({exc})"
            alive = "yes" if d.alive() else "NO (exited)"
            if ok == "yes" and d.alive():
                best = max(best, len(held))
            print(f"{len(held):>7} {ok:>9} {statistics.median(lat) * 1e3:>7.2f} "
                  f"{statistics.median(lat) / statistics.median(idle):>7.2f} {pct(lat, .99) * 1e3:>7.2f} "
                  f"{pct(lat, .99) / pct(idle, .99):>7.2f} {d.rss_mb():>14.1f} {alive:>9}")
            if len(held) < n:
                break
        for s in held:
            s.close()
        goal = 10_000
        print(f"held {best} connections while answering: goal >= {goal}: "
              + ("met" if best >= goal else "MISSED"))
    finally:
        d.stop()

    cap = 2000
    d = Daemon(base, root, PERFD_MAX_CONNECTIONS=str(cap))
    try:
        held = [d.connect() for _ in range(cap)]
        time.sleep(0.5)
        extra = d.connect()
        try:
            refusal = read_frame(extra).decode()
        except (OSError, ConnectionError) as exc:
            refusal = f"(no answer: {exc})"
        extra.close()
        for s in held[:10]:
            s.close()
        time.sleep(0.3)
        try:
            answered = d.call(body).startswith(b"RAW 0 ")
        except OSError:
            answered = False
        for s in held[10:]:
            s.close()
        print(f"with max_connections = {cap}: connection {cap + 1} got {refusal[:120]}")
        print(f"  after 10 closed, a new client answered: {'yes' if answered else 'NO'}; daemon alive: "
              f"{'yes' if d.alive() else 'NO'}: " + ("met" if answered and d.alive() and '1004' in refusal else "MISSED"))
    finally:
        d.stop()


def heavy(base: str, root: str, n_light: int) -> None:
    print("\n2. a light request (cli status) while another client sends the heaviest allowed requests back to back")
    d = Daemon(base, root)
    light = light_body(root)
    try:
        print(f"{'heavy request':<40} {'one, ms':>8} {'idle p50':>9} {'idle p99':>9} {'loaded p50':>11} "
              f"{'loaded p99':>11} {'p99 ratio':>10} {'goal <= 3x':>11}")
        for name, hb in heavy_bodies(root).items():
            t = time.perf_counter()
            r = d.call(hb)
            one_ms = (time.perf_counter() - t) * 1e3
            assert r, "no answer to the heavy request"
            body_file = os.path.join(base, "heavy.body")
            with open(body_file, "wb") as f:
                f.write(hb)
            idle = time_light(d, light, n_light, min_s=1.5)  # side by side: idle, loaded, idle again
            # The attacker is another process: its own CPU, as on a real machine.
            hammer = subprocess.Popen([sys.executable, "-c", HAMMER, d.sock, body_file], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
            time.sleep(0.3)
            loaded = time_light(d, light, n_light, min_s=3.0)
            hammer.kill()
            out, _ = hammer.communicate()
            sent = out.split()[-1] if out.split() else "0"
            idle += time_light(d, light, n_light, min_s=1.5)
            ratio = pct(loaded, .99) / pct(idle, .99)
            print(f"{name:<40} {one_ms:>8.1f} {statistics.median(idle) * 1e3:>9.2f} "
                  f"{pct(idle, .99) * 1e3:>9.2f} {statistics.median(loaded) * 1e3:>11.2f} "
                  f"{pct(loaded, .99) * 1e3:>11.2f} {ratio:>10.2f} {'met' if ratio <= 3 else 'MISSED':>11}"
                  f"   (~{sent} heavy meanwhile)")
        print(f"daemon alive after all: {'yes' if d.alive() else 'NO'}")
    finally:
        d.stop()


def fuzz(n: int) -> None:
    print(f"\n3. protocol fuzz: {n} cases")
    env = dict(os.environ, PERFD_FUZZ_EXAMPLES=str(n), PYTHONPATH=os.path.join(REPO, "daemon"))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "3600",
                        os.path.join(REPO, "tests", "daemon", "test_fuzz_protocol.py")], cwd=REPO, env=env,
                       capture_output=True, text=True)
    dt = time.perf_counter() - t
    print(f"{n} cases in {dt:.1f} s ({n / dt:.0f}/s): " + ("the daemon survived every case, same pid"
                                                          if r.returncode == 0 else "FAILED:\n" + r.stdout[-3000:]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--light", type=int, default=400)
    ap.add_argument("--fuzz", type=int, default=0)
    opts = ap.parse_args()
    base = tempfile.mkdtemp(prefix="pda", dir="/tmp")
    try:
        root = make_workspace(base)
        print(f"perfd attack bench: python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
              f"open-file limit {resource.getrlimit(resource.RLIMIT_NOFILE)}")
        connections(base, root, [int(x) for x in opts.sizes.split(",")])
        heavy(base, root, opts.light)
        if opts.fuzz:
            fuzz(opts.fuzz)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
