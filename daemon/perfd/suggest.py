"""Did-you-mean: the closest of a few names to a mistyped one, counting a swap of two letters as one edit.

difflib's ratio prefers a shorter name ("stauts" -> "stats"); people mostly swap,
drop or double a letter, which the optimal-string-alignment distance counts as one.
"""

from __future__ import annotations

from collections.abc import Iterable


def distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice nearest to `word` (case ignored), if near enough: a third of its letters at most. A tie
    goes to the longer common start ("bsh": "bash" before "zsh"), then the same length ("stauts":
    "status", a swap, before "stats"), then the first."""
    best: tuple[int, int, int, str] | None = None
    w = word.lower()
    for c in choices:
        lc = c.lower()
        d = distance(w, lc)
        start = next((i for i, (x, y) in enumerate(zip(w, lc)) if x != y), min(len(w), len(lc)))
        rank = (d, -start, abs(len(c) - len(word)))
        if d <= max(1, len(word) // 3) and (best is None or rank < best[:3]):
            best = (*rank, c)
    return best[3] if best else None
