"""`perfd config` and `perfd trust`, as the command line answers them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from perfd import exitcodes
from perfd.app.commands import run


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    (root / "work-space" / "plans").mkdir(parents=True)
    monkeypatch.setenv("PERFD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in [n for n in os.environ if n.startswith("PERFD_") and n != "PERFD_STATE_DIR"]:
        monkeypatch.delenv(name)
    (root / "perfd.toml").write_text('[daemon]\nmetrics_addr = "0.0.0.0:9464"\n[cache]\ncapacity = 100\n')
    return root


def test_config_shows_each_value_with_its_source(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFD_CACHE_TTL_S", "5")
    out = run(["config"], str(ws))
    assert out.code == exitcodes.OK, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["workspace:perfd.toml:4", "[cache]", "capacity", "=", "100"]
    assert lines[1].split() == ["environment:PERFD_CACHE_TTL_S", "[cache]", "ttl_s", "=", "5.0"]
    assert "(ignored: waits for `perfd trust`)" in lines[2]
    assert lines[-1].startswith("perfd: ignoring [daemon] metrics_addr")
    every = [line.split() for line in run(["config", "--all"], str(ws)).stdout.splitlines()]
    assert ["default", "[daemon]", "max_pending", "=", "256"] in every
    assert ["default", "[cache]", "capacity", "=", "4096"] not in every  # set by the workspace


def test_config_json(ws: Path) -> None:
    view = json.loads(run(["config", "--json"], str(ws)).stdout)
    assert view["trusted"] is False and view["waiting_for_trust"] == ["[daemon] metrics_addr"]
    assert {(r["table"], r["key"], r["source"]) for r in view["settings"]} == {
        ("cache", "capacity", "workspace"), ("daemon", "metrics_addr", "workspace")}


def test_trust_show_trust_revoke(ws: Path) -> None:
    show = run(["trust", "--show"], str(ws)).stdout
    assert "not trusted" in show and '[daemon] metrics_addr = "0.0.0.0:9464"' in show
    assert "trusted 1 setting(s)" in run(["trust"], str(ws)).stdout
    assert ": trusted;" in run(["trust", "--show"], str(ws)).stdout
    assert "ignored" not in run(["config"], str(ws)).stdout
    (ws / "perfd.toml").write_text('[daemon]\nmetrics_addr = "0.0.0.0:1"\n')
    assert "changed since you trusted it" in run(["trust", "--show"], str(ws)).stdout
    assert run(["trust", "--revoke"], str(ws)).stdout.startswith("revoked")
    assert run(["trust", "--revoke"], str(ws)).stdout.startswith("nothing to revoke")
    bad = run(["trust", "--show", "--revoke"], str(ws))
    assert bad.code == exitcodes.USAGE


def test_a_bad_setting_is_one_line_and_exit_1(ws: Path) -> None:
    (ws / "perfd.toml").write_text("[cache]\ncapacity = \"big\"\n")
    out = run(["config"], str(ws))
    assert (out.code, out.stdout) == (exitcodes.ERROR, "")
    assert out.stderr == "perfd: perfd.toml:2: [cache] capacity = 'big': expected int, got str\n"
