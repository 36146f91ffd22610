import pytest

from perfd.latency import Window, nearest_rank


def test_nearest_rank_is_an_observed_value() -> None:
    xs = [float(i) for i in range(1, 101)]  # 1..100
    assert nearest_rank(xs, 0.50) == 50.0
    assert nearest_rank(xs, 0.95) == 95.0
    assert nearest_rank(xs, 0.99) == 99.0
    assert nearest_rank(xs, 1.0) == 100.0
    assert nearest_rank([7.0], 0.5) == 7.0
    assert nearest_rank([1.0, 2.0, 3.0], 0.5) == 2.0
    assert nearest_rank([], 0.5) == 0.0


def test_window_keeps_only_the_latest_samples() -> None:
    w = Window(4)
    assert w.percentiles(0.5) == (0.0,)
    for v in (100, 100, 100, 100, 1, 2, 3, 4):  # the four 100s are pushed out
        w.add(v)
    assert len(w) == 4
    assert w.percentiles(0.5, 1.0) == (2.0, 4.0)


def test_window_needs_room() -> None:
    with pytest.raises(ValueError):
        Window(0)
