"""Fixtures for the perfd.llm tests: a real fake server and private state dirs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fakeserver import FakeServer  # noqa: E402


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "state")
    monkeypatch.setenv("PERFD_STATE_DIR", path)
    # These tests configure their stand-in model in the workspace's perfd.toml: the user trusts the
    # test's own folder, as `perfd trust` would (tests of trust itself unset this).
    monkeypatch.setenv("PERFD_TRUSTED_PATHS", str(tmp_path))
    for name in list(os.environ):
        if name.startswith("PERFD_LLM_"):
            monkeypatch.delenv(name)
    return path


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(max_lifetime_s=90) as srv:
        yield srv
