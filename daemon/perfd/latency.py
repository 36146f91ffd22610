"""Recent latencies and their percentiles, the same way for every producer of stats.

The stat cache's lookups, the daemon's methods, each LSP session's requests and
the model client all keep a bounded window of their latest samples and report
nearest-rank percentiles from it: a real observed value, no interpolation, so
figures shown side by side (a status bar, `perfd stats`) mean the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0 < q <= 1) of already sorted values by nearest rank; 0.0 when empty."""
    n = len(sorted_values)
    if not n:
        return 0.0
    # ceil(q * n) - 1, without math.ceil's float surprises for q * n just above an integer
    rank = -int(-q * n // 1) - 1
    return float(sorted_values[min(n - 1, max(0, rank))])


class Window:
    """The latest `size` samples (a ring: adding is O(1), on hot paths)."""

    __slots__ = ("size", "_buf", "_n")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a latency window holds at least one sample")
        self.size = size
        self._buf: list[float] = []
        self._n = 0

    def add(self, value: float) -> None:
        buf = self._buf
        if len(buf) < self.size:
            buf.append(value)
        else:
            buf[self._n % self.size] = value
        self._n += 1

    def __len__(self) -> int:
        return len(self._buf)

    def percentiles(self, *qs: float) -> tuple[float, ...]:
        """Nearest-rank percentiles of the samples held (0.0 each when there are none)."""
        data = sorted(self._buf)
        return tuple(nearest_rank(data, q) for q in qs)
