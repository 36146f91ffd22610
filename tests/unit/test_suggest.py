"""Did-you-mean (perfd.suggest): a swapped, dropped or doubled letter is one edit, and guesses stay near."""

from __future__ import annotations

from pathlib import Path

import pytest

import perfd
from perfd.app.commands import run
from perfd.suggest import closest, distance

EXAMPLE = Path(perfd.__file__).resolve().parent / "example"


@pytest.mark.parametrize("a,b,d", [("status", "stauts", 1), ("stats", "stauts", 1), ("run", "run", 0),
                                   ("generate", "genrate", 1), ("", "abc", 3), ("abc", "", 3), ("ab", "ba", 1)])
def test_distance_counts_a_swap_as_one_edit(a: str, b: str, d: int) -> None:
    assert distance(a, b) == d == distance(b, a)


def test_closest_picks_the_nearest_and_nothing_far() -> None:
    commands = ["generate", "status", "run", "stats", "config", "trust"]
    assert closest("stauts", commands) == "status"  # difflib's ratio would say "stats"
    assert closest("stauts", ["stats", "status"]) == "status"  # a tie goes to the same length, not the order
    assert closest("bsh", ["zsh", "bash", "fish"]) == "bash"  # ... after the longer common start
    assert closest("STATUS", commands) == "status"
    assert closest("xyz", commands) is None
    assert closest("confg", commands) == "config"


def test_an_unknown_plan_gets_the_nearest_name(tmp_path: Path) -> None:
    out = run(["generate", "@API-CLINT"], str(EXAMPLE))
    assert out.code == 1 and out.stderr.startswith("perfd: unknown plan @API-CLINT (did you mean @API-CLIENT?)\n")
    out = run(["generate", "@ZZZZZZ"], str(EXAMPLE))
    assert out.stderr.startswith("perfd: unknown plan @ZZZZZZ\nhint: available plans: @API-CLIENT")
