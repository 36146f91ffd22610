"""`perfd init` (a commented perfd.toml) and `perfd completion bash|zsh|fish`."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import msgspec
import pytest

from perfd.app.commands import parse, run


def test_init_writes_every_setting_commented_and_never_overwrites(tmp_path: Path) -> None:
    out = run(["init"], str(tmp_path))
    path = tmp_path / "perfd.toml"
    assert out.code == 0 and out.stdout == f"wrote {path}\n"
    text = path.read_text()
    assert tomllib.loads(text) == {"cache": {}, "workspace": {}, "daemon": {}}  # changes nothing as written
    # Uncommented, every line is valid TOML that perfd accepts, and [llm] lists every LLMConfig field.
    from perfd.llm.config import LLMConfig

    live = "\n".join(line[2:] if line.startswith("# ") and ("=" in line or line.startswith("# [")) else line
                     for line in text.splitlines())
    data = tomllib.loads(live)
    assert set(data["llm"]) == set(LLMConfig.__struct_fields__)
    msgspec.convert(data["llm"], LLMConfig)
    from perfd.settings.schema import CacheSettings, DaemonSettings

    assert set(data["cache"]) == set(CacheSettings.__struct_fields__) and data["cache"]["capacity"] == 4096
    assert data["workspace"] == {"plans_dir": "work-space/plans"}
    assert set(data["daemon"]) == set(DaemonSettings.__struct_fields__)  # every setting of the one schema
    from perfd.settings.resolve import load

    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "perfd.toml").write_text(live)
    load(str(tmp_path / "live"), {})  # the whole file, uncommented, is settings perfd accepts
    from perfd.llm.team_config import TeamConfig

    assert set(data["team"]) == set(TeamConfig.__struct_fields__)
    msgspec.convert(data["team"], TeamConfig)
    # never over an existing file without --force
    path.write_text("[cache]\ncapacity = 7\n")
    again = run(["init"], str(tmp_path))
    assert again.code == 1 and "exists; not overwritten" in again.stderr and "--force" in again.stderr
    assert path.read_text() == "[cache]\ncapacity = 7\n"
    assert run(["init", "--force"], str(tmp_path)).code == 0 and path.read_text() == text
    assert run(["init", "--stdout"], str(tmp_path)).stdout == text
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # written atomically: no leftovers


def test_init_does_not_follow_a_symlink_planted_at_perfd_toml(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    (tmp_path / "perfd.toml").symlink_to(target)
    assert run(["init"], str(tmp_path)).code == 1
    assert run(["init", "--force"], str(tmp_path)).code == 0
    assert target.read_text() == "precious\n" and not (tmp_path / "perfd.toml").is_symlink()


def test_init_writes_at_the_workspace_root_from_inside_it(tmp_path: Path) -> None:
    sub = tmp_path / "work-space" / "plans"
    sub.mkdir(parents=True)
    assert run(["init"], str(sub)).code == 0 and (tmp_path / "perfd.toml").exists()


def _bash_complete(script: str, *words: str) -> list[str]:
    line = " ".join(words)
    prog = (f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _perfd; "
            'printf "%s\\n" "${COMPREPLY[@]}"')
    p = subprocess.run(["bash", "--norc", "-c", prog], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_bash_completion_completes_commands_options_and_choices(tmp_path: Path) -> None:
    out = run(["completion", "bash"], str(tmp_path))
    assert out.code == 0
    script = out.stdout
    assert {"generate", "status", "run", "stats", "init", "completion", "daemon"} <= set(_bash_complete(script, "perfd", "''"))
    assert set(_bash_complete(script, "perfd", "st")) == {"status", "stats"}
    assert "--parallel" in _bash_complete(script, "perfd", "run", "--p")
    assert set(_bash_complete(script, "perfd", "stats", "--format", "''")) == {"text", "csv", "markdown", "json"}
    assert "restart" in _bash_complete(script, "perfd", "daemon", "re")
    assert "--no-daemon" in _bash_complete(script, "perfd", "--root", "/tmp", "status", "--no")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_parse(shell: str, tmp_path: Path) -> None:
    out = run(["completion", shell], str(tmp_path))
    assert out.code == 0 and "perfd" in out.stdout and "--parallel" not in out.stdout.split("run", 1)[0]
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed; its script's syntax is not checked here")
    f = tmp_path / f"perfd.{shell}"
    f.write_text(out.stdout)
    p = subprocess.run([exe, "-n", str(f)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr


def test_unknown_shell_is_a_usage_error(tmp_path: Path) -> None:
    out = run(["completion", "powershell"], str(tmp_path))
    assert out.code == 2 and "invalid choice" in out.stderr


def test_no_daemon_is_accepted_after_the_subcommand() -> None:
    for argv in (["run", "@X", "--no-daemon"], ["status", "--no-daemon"], ["stats", "--history", "--no-daemon"]):
        args = parse(argv)
        assert not hasattr(args, "stdout") and args.no_daemon is True, argv
    assert parse(["status"]).no_daemon is False  # type: ignore[union-attr]


def test_thin_client_reads_no_daemon_anywhere() -> None:
    from perfd.cli.client import read_line

    assert read_line(["run", "@X", "--no-daemon"], "/")[1:] == ("run", True)
    assert read_line(["--no-daemon", "status"], "/")[1:] == ("status", True)
    assert read_line(["status"], "/")[1:] == ("status", False)
    assert read_line(["generate", "--", "--no-daemon"], "/")[1:] == ("generate", False)
