"""Fixtures of the engine tests; the helpers are in engine_helpers.py.

(Helpers live in a module with a unique name: several test folders have a
conftest.py, and `from conftest import ...` would find whichever came first.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_helpers import WS


@pytest.fixture
def ws(tmp_path: Path) -> WS:
    return WS(tmp_path / "root")
