"""Nothing read back from a cache level is trusted for size or shape ([llm] cache_max_answer_bytes).

Anyone who can write to the team's Redis can plant a value under a cached answer's key: a
compressed bomb, garbage, a key of another type. Each is a miss (counted, logged once), never a
crash, a stall or a daemon inflating gigabytes. The same bound holds for memory and the SQLite file.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeServer
from redis_helpers import RedisServer, redis_server_binary

from perfd.llm import LLMClient, LLMConfig, TeamConfig
from perfd.llm.cache import CachedResponse, ResponseCache
from perfd.llm.team import decode_value

MB = 1024 * 1024


def zlib_bomb(inflated_mb: int = 1520) -> bytes:
    """A valid zlib stream of ~1.5 MB that inflates to `inflated_mb` MB of zeros, made in well under a second:
    fully flushed blocks are independent, so one 16 MB block's output is repeated and the checksum fixed up."""
    zeros = b"\0" * (16 * MB)
    co = zlib.compressobj(9)
    first = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    block = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    end = co.flush()[:-4]
    blocks = inflated_mb // 16
    adler = 1
    for _ in range(blocks):
        adler = zlib.adler32(zeros, adler)
    return first + block * (blocks - 1) + end + struct.pack(">I", adler)


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("redis-server not found: run tests/setup-tools.sh (apt-get install redis-server)")
    folder = tempfile.mkdtemp(prefix="perfd-redis-", dir="/tmp")
    server = RedisServer(folder, binary=binary).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def client(server: FakeServer, redis_url: str, state: Path, **over: Any) -> LLMClient:
    values: dict[str, Any] = {"base_url": server.base_url, "model": "fake-model", "history": False,
                              "retry_base_s": 0.01, "retry_max_s": 0.05, "timeout_s": 5.0, "connect_timeout_s": 1.0,
                              "cache_path": str(state / "cache.sqlite3")}
    values.update(over)
    return LLMClient(LLMConfig(**values), state_dir=str(state), team=TeamConfig(redis_url=redis_url))


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_the_bomb_inflates_no_further_than_the_bound() -> None:
    bomb = b"\x01" + zlib_bomb()
    assert 1.4 * MB < len(bomb) < 1.6 * MB
    assert decode_value(bomb, 4 * MB) == "too large once inflated"
    assert decode_value(bomb, MB) == "too large"  # not even fetched whole: larger than any answer compresses to


@pytest.mark.parametrize(("value", "why"), [
    (b"\x02anything", "unknown format"),
    (b"\x01not zlib at all", "not zlib data"),
    (b"\x01" + zlib.compress(b"\x93\x01\x02")[:-3], "truncated"),
    (b"\x00\x93\x01\x02\x03", "not an answer"),
    (b"\x00" + b"\xa1x" * 10, "not an answer"),
    (b"\x00" + b"x" * 2000, "too large"),
])
def test_every_malformed_value_says_why_it_is_refused(value: bytes, why: str) -> None:
    assert decode_value(value, 1000) == why


def test_a_good_value_still_decodes() -> None:
    import msgspec

    body = msgspec.msgpack.encode(CachedResponse(text="hi", model="m"))
    assert decode_value(b"\x00" + body, 1000) == CachedResponse(text="hi", model="m")
    assert decode_value(b"\x01" + zlib.compress(body), 1000) == CachedResponse(text="hi", model="m")


async def test_a_planted_bomb_is_a_counted_miss_and_the_daemon_stays_small(
        tmp_path: Path, redis_server: RedisServer, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    server.settings.reply_chars = 3000
    a = client(server, redis_server.url, tmp_path / "a")
    async with a:
        paid = await a.complete(ask("the shared question"))
        await a.flush()
    with redis_server.client() as admin:
        [key] = admin.keys("perfd:*:c:*")
        admin.set(key, b"\x01" + zlib_bomb())
    before = peak_rss_mb()
    b = client(server, redis_server.url, tmp_path / "b")
    with caplog.at_level(logging.WARNING, logger="perfd.llm"):
        async with b:
            again = await b.complete(ask("the shared question"))
            assert again.text == paid.text and not again.cached  # a miss: the model answered again
            assert len(server.records) == 2
            team = b.stats().team
            assert team is not None and team.cache_rejected == 1 and team.cache_misses == 1
            assert team.state == "up" and team.redis_errors == 0  # a planted value is not Redis failing
            await b.flush()
    assert peak_rss_mb() - before < 50, "the bomb was inflated"
    assert "ignored (too large once inflated)" in caplog.text
    with redis_server.client() as admin:  # the miss paid again and overwrote the bomb with the answer
        assert admin.get(key)[:1] == b"\x01" and len(admin.get(key)) < 10_000


@pytest.mark.parametrize("plant", ["garbage", "list", "oversized-raw"])
async def test_garbage_and_keys_of_another_type_are_misses(
        tmp_path: Path, redis_server: RedisServer, server: FakeServer, plant: str) -> None:
    a = client(server, redis_server.url, tmp_path / "a")
    async with a:
        await a.complete(ask("q"))
        await a.flush()
    with redis_server.client() as admin:
        [key] = admin.keys("perfd:*:c:*")
        if plant == "list":
            admin.delete(key)
            admin.rpush(key, b"x")
        elif plant == "garbage":
            admin.set(key, b"\x00\xc1\xc1\xc1")
        else:
            admin.set(key, b"\x00" + b"x" * (2 * MB))
    b = client(server, redis_server.url, tmp_path / "b", cache_max_answer_bytes=MB)
    async with b:
        assert not (await b.complete(ask("q"))).cached
        team = b.stats().team
        assert team is not None and team.state == "up" and team.redis_errors == 0
        assert team.cache_rejected == (0 if plant == "list" else 1)
        assert team.cache_misses == 1
        assert (await b.complete(ask("q"))).cached  # the answer paid again is a hit now


async def test_an_answer_over_the_bound_is_kept_by_no_level(
        tmp_path: Path, redis_server: RedisServer, server: FakeServer) -> None:
    server.settings.reply_chars = 5000
    a = client(server, redis_server.url, tmp_path / "a", cache_max_answer_bytes=4000)
    async with a:
        await a.complete(ask("big"))
        await a.flush()
        assert not (await a.complete(ask("big"))).cached
        assert len(server.records) == 2
    with redis_server.client() as admin:
        assert admin.keys("perfd:*:c:*") == []


async def test_a_disk_entry_over_the_bound_is_a_miss(tmp_path: Path) -> None:
    path = str(tmp_path / "cache.sqlite3")
    cache = ResponseCache(path, ttl_s=60.0, max_answer_bytes=MB)
    cache.put("k", CachedResponse(text="small", model="m"))
    await cache.flush()
    cache.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE responses SET body = ? WHERE key = 'k'", (b"\xa1x" * MB,))
    conn.commit()
    conn.close()
    again = ResponseCache(path, ttl_s=60.0, max_answer_bytes=MB)
    assert await again.get("k") is None
    again.close()
    wider = ResponseCache(path, ttl_s=60.0, max_answer_bytes=4 * MB)
    assert await wider.get("k") is None  # within the bound but not an answer: a miss too
    wider.close()
