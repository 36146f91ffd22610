"""The two shared registries: one exit-code module, one command registry.

Every exit code is defined once (perfd.exitcodes) and means one thing, the
README's table says the same; the parser, the served-here checks, help and
completion are all read from perfd.command_registry.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import perfd
from perfd import command_registry as registry
from perfd import exitcodes
from perfd.app import completion
from perfd.app.commands import build_parser, run

PACKAGE = Path(perfd.__file__).resolve().parent
README = PACKAGE.parents[1] / "README.md"


def test_each_exit_code_means_one_thing() -> None:
    codes = [c for c, _ in exitcodes.MEANINGS]
    assert len(codes) == len(set(codes))
    names = {n: v for n, v in vars(exitcodes).items() if n.isupper() and isinstance(v, int)}
    assert sorted(names.values()) == sorted(codes)  # every named code has its meaning, and no more


def test_the_readme_lists_the_exit_codes_of_the_module() -> None:
    text = README.read_text()
    section = text[text.index("### Exit codes"):]
    section = section[:section.index("\n#")]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M))
    assert {int(k): v for k, v in rows.items()} == dict(exitcodes.MEANINGS)


def test_no_other_module_defines_an_exit_code() -> None:
    """`EXIT_X = 3` anywhere but perfd.exitcodes is a second definition that can drift."""
    found = []
    for file in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_bytes())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AnnAssign, ast.AugAssign)) else []
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name) and n.id.startswith("EXIT_"):
                        found.append(f"{file.relative_to(PACKAGE)}:{node.lineno}: {n.id}")
    assert not found, "exit codes defined outside perfd.exitcodes:\n" + "\n".join(found)


def test_the_parser_has_exactly_the_registry_commands_and_options(tmp_path: Path) -> None:
    p = build_parser()
    for cmd in registry.commands():
        out = run([cmd.name, "--help"], str(tmp_path))
        assert out.code == exitcodes.OK and out.stdout.startswith(f"usage: perfd {cmd.name}"), cmd.name
        for opt in cmd.options:
            if not opt.positional:
                assert all(f in out.stdout for f in opt.flags), (cmd.name, opt.flags)
    top = p.format_help()
    for cmd in registry.commands():
        assert f"    {cmd.name}" in top and cmd.help.split()[0] in top


def test_a_registry_option_is_parsed_as_its_kind(tmp_path: Path) -> None:
    ns = build_parser().parse_args(["stats", "--history", "--days", "7", "--format", "csv", "--root", "R"])
    assert (ns.days, ns.format, ns.root, ns.history, ns.json) == (7, "csv", "R", True, False)
    assert build_parser().parse_args(["daemon"]).action is None  # bare: its usage, nothing started
    bad = run(["stats", "--json", "--prometheus"], str(tmp_path))  # one exclusive group
    assert bad.code == exitcodes.USAGE and "not allowed with" in bad.stderr
    bad = run(["completion", "tcsh"], str(tmp_path))
    assert bad.code == exitcodes.USAGE and "invalid choice" in bad.stderr


def test_local_commands_are_served_only_in_process(tmp_path: Path) -> None:
    assert registry.LOCAL_COMMANDS == {"init", "new", "completion", "schema", "config", "trust", "doctor"}
    assert registry.DAEMON_COMMANDS == {"generate", "status", "stats"}
    for name in registry.LOCAL_COMMANDS:
        argv = [name, "bash"] if name == "completion" else [name, "X"] if name == "new" else [name]
        out = run(argv, str(tmp_path), in_daemon=True)
        assert out.code == exitcodes.USAGE and "is not available here" in out.stderr, name
    from perfd.cli import client

    assert client.SERVED is registry.SERVED  # the client routes by the registry's table, without importing it
    assert tuple(registry.SERVED) == tuple(c.name for c in registry.commands())
    assert all(where in (registry.DAEMON, registry.LOCAL, registry.OWN) for where in registry.SERVED.values())


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_offers_every_registry_command_and_option(shell: str) -> None:
    text = completion.script(shell)
    for cmd in registry.commands():
        assert cmd.name in text
        for opt in cmd.options:
            if opt.positional:
                assert all(c in text for c in opt.choices)
            else:
                long = [f for f in opt.flags if f.startswith("--")][0]
                assert (long if shell != "fish" else f"-l {long[2:]}") in text, (shell, cmd.name, long)


@pytest.mark.parametrize("argv,expect", [
    (["--help"], True), (["status", "-h"], True), (["daemon", "run", "--help"], True),
    (["--root", "--help", "status"], False),  # a folder named --help
    (["generate", "--", "--help"], False), (["status"], False),
])
def test_the_thin_client_sees_help_anywhere(argv: list[str], expect: bool) -> None:
    from perfd.cli.client import wants_help

    assert wants_help(argv) is expect
