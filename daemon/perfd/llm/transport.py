"""The provider's connection pool: one logical pool, split into small shards.

httpcore 1.0's pool walks every connection for every idle connection each
time a request starts or ends (`_assign_requests_to_connections`), so its CPU
cost per request grows with the square of the pool size: at 16-50 kept-alive
connections it costs more than opening a fresh TCP connection on loopback.
Shards of at most `SHARD_SIZE` connections keep that walk tiny while the
total stays within `max_connections`. Each request goes to the least busy
shard, so sequential calls keep reusing the same connection.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import httpx

SHARD_SIZE = 4


class ShardedPool(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int, max_keepalive_connections: int, keepalive_expiry: float) -> None:
        count = max(1, math.ceil(max_connections / SHARD_SIZE))
        sizes = [max_connections // count + (1 if i < max_connections % count else 0) for i in range(count)]
        keep = [max(1, math.ceil(max_keepalive_connections * size / max_connections)) for size in sizes]
        self._shards = [
            httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=min(k, size),
                                    keepalive_expiry=keepalive_expiry),
                retries=0,  # the client's retry layer is the only one
            )
            for size, k in zip(sizes, keep)
        ]
        self._sizes = sizes
        self._busy = [0] * count

    @property
    def shards(self) -> int:
        return len(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Least busy relative to its size; ties go to the first shard.
        index = min(range(len(self._shards)), key=lambda i: self._busy[i] / self._sizes[i])
        self._busy[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._busy[index] -= 1
            raise
        response.stream = _Release(response.stream, self, index)
        return response

    def _release(self, index: int) -> None:
        self._busy[index] -= 1

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _Release(httpx.AsyncByteStream):
    """Wraps a response body to give the shard its slot back exactly once, on close."""

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, pool: ShardedPool, index: int) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._pool = pool
        self._index = index
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._open:
                self._open = False
                self._pool._release(self._index)
