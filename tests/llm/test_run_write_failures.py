"""`perfd run --write` when the write fails after the model was paid: one line naming the file and
the OS error, exit code WRITE, the answer printed and kept in the history; and nothing ever created
outside the workspace, whatever is swapped for a link meanwhile (deterministic swap, then a race)."""

from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path

import pytest
from fakeserver import FakeServer

import perfd.app.run as run_service
from perfd import exitcodes
from perfd.app.commands import run as run_command
from perfd.app.run_render import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "daemon" / "perfd" / "example"
DOCS = Path("work-space") / "plans" / "a_real-use-cases" / "DOCS-SITE"
RACE_RUNS = 200  # the bench (tests/bench/bench_run_write_race.py) runs 3,000


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(EXAMPLE, root)
    return root


def env(server: FakeServer) -> dict[str, str]:
    return {"PERFD_LLM_BASE_URL": server.base_url, "PERFD_LLM_MODEL": "fake-model",
            "PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"], "PERFD_TRUSTED_PATHS": os.environ["PERFD_TRUSTED_PATHS"]}


def run(ws: Path, server: FakeServer, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", *argv], str(ws), out=out, err=err, env=env(server))
    return code, out.getvalue(), err.getvalue()


def kept_again(ws: Path, line: str) -> str:
    """The answer `stats --history --answer ID` prints, ID read from the run's last line."""
    answer_id = line.rsplit("--answer ", 1)[1].strip()
    got = run_command(["stats", "--history", "--answer", answer_id], str(ws))
    assert got.code == 0, got.stderr
    return got.stdout


def test_a_file_where_the_folder_should_be_is_one_line_exit_write_and_the_answer_kept(
        ws: Path, server: FakeServer) -> None:
    folder = ws / DOCS / "subplans"
    shutil.rmtree(folder)
    folder.write_text("not a folder\n")
    code, out, err = run(ws, server, "@DOCS-SITE", "2.1", "--write")
    assert code == exitcodes.WRITE == 5 and len(server.records) == 1
    assert out.startswith("reply#")  # the answer is still printed
    last = err.splitlines()[-1]
    assert last.startswith("perfd: cannot write work-space/plans/a_real-use-cases/DOCS-SITE/subplans/"
                           "SUBPLAN_DOCS-SITE_21.md: Not a directory (")
    assert "Traceback" not in err and "internal error" not in err
    assert kept_again(ws, last) == out.rstrip("\n")
    assert folder.read_text() == "not a folder\n"


def test_a_folder_swapped_for_a_link_between_the_check_and_the_write(
        ws: Path, server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = ws / DOCS / "subplans"
    real_check = run_service.check_writable

    def check_then_swap(*args: object, **kwargs: object) -> str:
        path = real_check(*args, **kwargs)  # type: ignore[arg-type]
        os.rename(folder, folder.with_name("subplans.moved"))
        os.symlink(outside, folder)  # now subplans/ leads outside the workspace
        return path

    monkeypatch.setattr(run_service, "check_writable", check_then_swap)
    code, out, err = run(ws, server, "@DOCS-SITE", "2.1", "--write")
    assert code == exitcodes.WRITE and out.startswith("reply#")
    assert list(outside.iterdir()) == []  # no file, temporary or not, outside
    assert "a symbolic link where a folder should be (not followed)" in err.splitlines()[-1]
    assert [p.name for p in folder.with_name("subplans.moved").iterdir()] == ["SUBPLAN_DOCS-SITE_11.md"]


def test_racing_writes_never_leave_a_file_outside(ws: Path, server: FakeServer, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    base = ws / DOCS
    stop = threading.Event()
    flips = [0]

    def flip() -> None:
        """subplans/ a real folder, then a link leading outside, then the folder again, as fast as it goes."""
        link = base / "subplans.link"
        while not stop.is_set():
            try:
                os.symlink(outside, link)
                os.rename(base / "subplans", base / "subplans.real")
                os.rename(link, base / "subplans")  # may replace a folder `run` just made: then it fails
            except OSError:
                pass
            for name in ("subplans.link",):
                try:
                    os.unlink(base / name)
                except OSError:
                    pass
            try:
                if (base / "subplans").is_symlink():
                    os.unlink(base / "subplans")
                elif (base / "subplans").is_dir() and (base / "subplans.real").exists():
                    shutil.rmtree(base / "subplans")  # made by a run meanwhile
                os.rename(base / "subplans.real", base / "subplans")
            except OSError:
                pass
            flips[0] += 1

    racer = threading.Thread(target=flip, daemon=True)
    racer.start()
    codes: dict[int, int] = {}
    try:
        for _ in range(RACE_RUNS):
            code, _out, err = run(ws, server, "@DOCS-SITE", "2.1", "--write", "--force")
            codes[code] = codes.get(code, 0) + 1
            assert "Traceback" not in err and "internal error" not in err, err
            assert code in (exitcodes.OK, exitcodes.ERROR, exitcodes.WRITE), err
    finally:
        stop.set()
        racer.join(timeout=10)
    assert list(outside.iterdir()) == [], codes
    assert flips[0] > 10
    leftovers = [p for p in ws.rglob(".perfd-*.tmp")]
    assert leftovers == []
