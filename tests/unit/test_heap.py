"""heap.settle freezes what is alive; settle_if_grown acts only after new imports."""

from __future__ import annotations

import gc
import sys
import types

from perfd.runtime import heap


def test_settle_freezes_live_objects_and_reacts_only_to_new_modules() -> None:
    try:
        heap.settle()
        assert gc.get_freeze_count() > 0
        assert heap.settle_if_grown() is False  # nothing imported since
        sys.modules["perfd_test_fake_module"] = types.ModuleType("perfd_test_fake_module")
        assert heap.settle_if_grown() is True
        assert heap.settle_if_grown() is False
    finally:
        sys.modules.pop("perfd_test_fake_module", None)
        gc.unfreeze()
