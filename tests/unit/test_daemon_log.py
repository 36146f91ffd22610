"""The daemon's log: every perfd logger writes to it (model-call warnings included), never through a symlink."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from perfd.daemon.server import setup_logging


@pytest.fixture
def clean_perfd_logger() -> Iterator[None]:
    top = logging.getLogger("perfd")
    saved = (list(top.handlers), top.level, top.propagate)
    yield
    for h in top.handlers:
        if h not in saved[0]:
            h.close()
    top.handlers[:] = saved[0]
    top.setLevel(saved[1])
    top.propagate = saved[2]


def test_model_call_warnings_reach_the_daemon_log(tmp_path: Path, clean_perfd_logger: None) -> None:
    path = tmp_path / "d.log"
    setup_logging(str(path))
    logging.getLogger("perfd.llm").warning("the history file is unusable")
    logging.getLogger("perfd.daemon").info("serving")
    for h in logging.getLogger("perfd").handlers:
        h.flush()
    text = path.read_text()
    assert "the history file is unusable" in text and "serving" in text


def test_a_symlink_at_the_log_name_is_not_followed(tmp_path: Path, clean_perfd_logger: None) -> None:
    victim = tmp_path / "victim"
    os.symlink(victim, tmp_path / "d.log")
    with pytest.raises(OSError):
        setup_logging(str(tmp_path / "d.log"))
    assert not victim.exists()
