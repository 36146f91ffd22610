"""perfd.settings: one schema, three sources merged key by key, errors with file and line, workspace trust."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from perfd.settings import trust
from perfd.settings.resolve import ENVIRONMENT, USER, WORKSPACE, load, trust_now
from perfd.settings.sources import SettingsError


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    (root / "work-space" / "plans").mkdir(parents=True)
    monkeypatch.setenv("PERFD_STATE_DIR", str(tmp_path / "state"))
    return root


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path), **extra}


def user_config(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config" / "perfd" / "config.toml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_defaults_with_no_source(ws: Path, tmp_path: Path) -> None:
    s = load(str(ws), env_for(tmp_path))
    assert (s.cache.capacity, s.daemon.idle_timeout_s, s.workspace.plans_dir) == (4096, 1800.0, "work-space/plans")
    assert s.entries == () and s.trusted and s.waiting == () and s.notice() == ""
    assert s.origin("cache", "capacity").source == "default"


def test_environment_over_workspace_over_user_key_by_key(ws: Path, tmp_path: Path) -> None:
    user_config(tmp_path, "[cache]\ncapacity = 10\nttl_s = 5\n[daemon]\nmax_pending = 7\n")
    (ws / "perfd.toml").write_text("# settings\n[cache]\ncapacity = 20\n")
    s = load(str(ws), env_for(tmp_path, PERFD_CACHE_TTL_S="9", PERFD_IDLE_TIMEOUT_S="60"))
    assert (s.cache.capacity, s.cache.ttl_s, s.daemon.max_pending, s.daemon.idle_timeout_s) == (20, 9.0, 7, 60.0)
    assert s.origin("cache", "capacity") .source == WORKSPACE and s.origin("cache", "capacity").where == "perfd.toml:3"
    assert s.origin("cache", "ttl_s").where == "PERFD_CACHE_TTL_S" and s.origin("cache", "ttl_s").source == ENVIRONMENT
    assert s.origin("daemon", "max_pending").source == USER
    assert s.origin("daemon", "max_pending").where.endswith("config.toml:5")
    assert s.origin("daemon", "idle_timeout_s").where == "PERFD_IDLE_TIMEOUT_S"  # the older name still works
    over = [e for e in s.entries if e.key == "capacity" and e.ignored]
    assert [e.origin.source for e in over] == [USER] and over[0].ignored == "overridden by perfd.toml:3"


def test_an_empty_variable_unsets_the_files_value(ws: Path, tmp_path: Path) -> None:
    (ws / "perfd.toml").write_text("[cache]\ncapacity = 20\n")
    s = load(str(ws), env_for(tmp_path, PERFD_CACHE_CAPACITY=""))
    assert s.cache.capacity == 4096


def test_pyproject_tool_perfd_with_lines(ws: Path, tmp_path: Path) -> None:
    (ws / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.perfd.cache]\ncapacity = 3\n')
    s = load(str(ws), env_for(tmp_path))
    assert s.cache.capacity == 3 and s.origin("cache", "capacity").where == "pyproject.toml:5"
    (ws / "pyproject.toml").write_text('[tool.perfd.cach]\ncapacity = 3\n')
    with pytest.raises(SettingsError, match=r"^pyproject.toml:1: unknown table \[cach\] \(did you mean \[cache\]\?\)"):
        load(str(ws), env_for(tmp_path))


@pytest.mark.parametrize("text,message", [
    ("[cach]\ncapacity = 1\n", r"^perfd.toml:1: unknown table \[cach\] \(did you mean \[cache\]\?\)"),
    ("[daemon]\nidle_timeout = 5\n", r"^perfd.toml:2: unknown setting \[daemon\] idle_timeout \(did you mean idle_timeout_s\?\)"),
    ("idle_timeout_s = 5\n", r"^perfd.toml:1: idle_timeout_s is not a setting at the top level \(did you mean \[daemon\] idle_timeout_s\?\)"),
    ("[cache]\n\ncapacity = \"big\"\n", r"^perfd.toml:3: \[cache\] capacity = 'big': expected int, got str$"),
    ("[workspace]\nplans_dir = 5\n", r"^perfd.toml:2: \[workspace\] plans_dir = 5: expected str, got int$"),
    ("[cache]\ncapacity = 0\n", r"^perfd.toml:2: \[cache\] capacity = 0: expected int >= 1$"),
    ("[cache\ncapacity = 1\n", r"^perfd.toml: invalid TOML: .*\(at line 1, column \d+\)$"),
    ("[workspace]\nplans_dir = \"../elsewhere\"\n", r"^perfd.toml:2: \[workspace\] plans_dir = '../elsewhere': a folder inside"),
    ("[workspace]\nplans_dir = \"/etc\"\n", r"^perfd.toml:2: \[workspace\] plans_dir = '/etc': a folder inside"),
])
def test_a_bad_workspace_file_is_one_line_naming_file_line_and_setting(ws: Path, tmp_path: Path, text: str,
                                                                       message: str) -> None:
    (ws / "perfd.toml").write_text(text)
    with pytest.raises(SettingsError, match=message) as info:
        load(str(ws), env_for(tmp_path))
    assert "\n" not in str(info.value)


def test_a_bad_user_config_names_it_with_a_tilde(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    user_config(tmp_path, "[daemon]\nmax_pending = -1\n")
    with pytest.raises(SettingsError, match=r"^~/config/perfd/config.toml:2: \[daemon\] max_pending = -1"):
        load(str(ws), env_for(tmp_path))


@pytest.mark.parametrize("name,value,message", [
    ("PERFD_CACHE_CAPACTY", "3", r"^unknown setting PERFD_CACHE_CAPACTY in the environment \(did you mean PERFD_CACHE_CAPACITY\?\)"),
    ("PERFD_CACHE_CAPACITY", "big", r"^invalid PERFD_CACHE_CAPACITY='big' in the environment: expected int"),
])
def test_a_bad_variable_is_one_line(ws: Path, tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(str(ws), env_for(tmp_path, **{name: value}))


def test_other_perfd_variables_are_not_settings(ws: Path, tmp_path: Path) -> None:
    load(str(ws), env_for(tmp_path, PERFD_RUNTIME_DIR="/x", PERFD_STATE_DIR_X="y"))


def test_metrics_beyond_loopback_from_the_workspace_waits_for_trust(ws: Path, tmp_path: Path) -> None:
    (ws / "perfd.toml").write_text('[daemon]\nmetrics_addr = "0.0.0.0:9464"\n')
    s = load(str(ws), env_for(tmp_path))
    assert s.daemon.metrics_addr is None and not s.trusted and s.waiting == ("[daemon] metrics_addr",)
    assert "perfd trust" in s.notice() and "\n" not in s.notice() and s.notice().startswith("ignoring ")
    [e] = s.entries
    assert e.ignored == "waits for `perfd trust`"
    path, names = trust_now(str(ws))
    assert names == ["[daemon] metrics_addr"] and os.path.isfile(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    s = load(str(ws), env_for(tmp_path))
    assert s.trusted and s.daemon.metrics_addr == "0.0.0.0:9464" and s.notice() == ""
    # any change to what needs trust revokes it
    (ws / "perfd.toml").write_text('[daemon]\nmetrics_addr = "0.0.0.0:9465"\n')
    s = load(str(ws), env_for(tmp_path))
    assert not s.trusted and s.daemon.metrics_addr is None
    trust_now(str(ws))
    assert load(str(ws), env_for(tmp_path)).trusted
    assert trust.revoke(str(ws.resolve())) and not load(str(ws), env_for(tmp_path)).trusted
    assert not trust.revoke(str(ws.resolve()))


def test_the_user_and_the_environment_need_no_trust(ws: Path, tmp_path: Path) -> None:
    user_config(tmp_path, '[daemon]\nmetrics_addr = "0.0.0.0:1"\n')
    assert load(str(ws), env_for(tmp_path)).daemon.metrics_addr == "0.0.0.0:1"
    s = load(str(ws), env_for(tmp_path, PERFD_DAEMON_METRICS_ADDR="0.0.0.0:2"))
    assert s.daemon.metrics_addr == "0.0.0.0:2" and s.trusted


@pytest.mark.parametrize("addr", ["127.0.0.1:9464", "[::1]:9464", "localhost:9464", ":9464", "9464"])
def test_loopback_metrics_need_no_trust(ws: Path, tmp_path: Path, addr: str) -> None:
    (ws / "perfd.toml").write_text(f'[daemon]\nmetrics_addr = "{addr}"\n')
    s = load(str(ws), env_for(tmp_path))
    assert s.trusted and s.daemon.metrics_addr == addr


def test_a_trust_record_is_for_one_workspace_path(ws: Path, tmp_path: Path) -> None:
    (ws / "perfd.toml").write_text('[daemon]\nmetrics_addr = "0.0.0.0:9464"\n')
    trust_now(str(ws))
    other = tmp_path / "clone"
    other.mkdir()
    (other / "perfd.toml").write_text('[daemon]\nmetrics_addr = "0.0.0.0:9464"\n')
    assert not load(str(other), env_for(tmp_path)).trusted  # the same content elsewhere is not trusted


def test_a_planted_record_is_not_trust(ws: Path, tmp_path: Path) -> None:
    (ws / "perfd.toml").write_text('[daemon]\nmetrics_addr = "0.0.0.0:9464"\n')
    path = trust.record_path(str(ws.resolve()))
    os.symlink(str(tmp_path / "elsewhere.json"), path)  # a link is never followed
    (tmp_path / "elsewhere.json").write_text("{}")
    assert not load(str(ws), env_for(tmp_path)).trusted
    os.unlink(path)
    Path(path).write_text("not json")
    assert not load(str(ws), env_for(tmp_path)).trusted


def test_a_state_folder_that_is_a_file_is_one_line(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("PERFD_STATE_DIR", str(tmp_path / "afile"))
    (ws / "perfd.toml").write_text('[daemon]\nmetrics_addr = "0.0.0.0:9464"\n')
    with pytest.raises(SettingsError, match="check XDG_STATE_HOME") as info:
        load(str(ws), env_for(tmp_path))
    assert "\n" not in str(info.value)


def test_the_users_environment_can_trust_workspace_roots(ws: Path, tmp_path: Path) -> None:
    (ws / "perfd.toml").write_text('[daemon]\nmetrics_addr = "0.0.0.0:9464"\n')
    assert load(str(ws), env_for(tmp_path, PERFD_TRUSTED_PATHS=f"/nowhere{os.pathsep}{tmp_path}")).trusted
    assert load(str(ws), env_for(tmp_path, PERFD_TRUSTED_PATHS=str(ws))).trusted
    assert not load(str(ws), env_for(tmp_path, PERFD_TRUSTED_PATHS=str(ws) + "x")).trusted  # a prefix is not a folder
    assert not load(str(ws), env_for(tmp_path, PERFD_TRUSTED_PATHS="relative/ws")).trusted


def test_a_workspace_settings_file_linked_outside_the_workspace_is_not_read(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "users-own.toml"
    outside.write_text('[daemon]\nmax_pending = 7\n')
    (ws / "perfd.toml").symlink_to(outside)
    with pytest.raises(SettingsError, match=r"^perfd.toml: a link leading outside the workspace; not read$"):
        load(str(ws), env_for(tmp_path))
    (ws / "perfd.toml").unlink()
    (ws / ".perfd").mkdir()
    (ws / "inside.toml").write_text('[daemon]\nmax_pending = 9\n')
    (ws / ".perfd" / "perfd.toml").symlink_to(ws / "inside.toml")  # inside: read as usual
    assert load(str(ws), env_for(tmp_path)).daemon.max_pending == 9


def test_a_workspace_may_verify_more_often_but_not_turn_the_verification_off(ws: Path, tmp_path: Path) -> None:
    (ws / "perfd.toml").write_text('[daemon]\nverify_interval_s = 5\n')
    s = load(str(ws), env_for(tmp_path))
    assert s.daemon.verify_interval_s == 5 and s.trusted
    for value in ("0", "3600"):  # off, or rarer than the default: what no event reports would go unseen
        (ws / "perfd.toml").write_text(f'[daemon]\nverify_interval_s = {value}\n')
        s = load(str(ws), env_for(tmp_path))
        assert s.daemon.verify_interval_s == 30.0 and s.waiting == ("[daemon] verify_interval_s",)
