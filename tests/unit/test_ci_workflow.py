"""The GitHub Actions workflow cannot run here: lint it, check its shape, and keep it on the README's command."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKFLOW = os.path.join(REPO, ".github", "workflows", "ci.yml")
E2E = " && bash e2e/setup.sh && npm run e2e"


def read(*parts: str) -> str:
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return f.read()


def readme_test_command() -> str:
    """The README's second set-up command (the one that installs what the tests need and runs them)."""
    blocks = re.findall(r"```sh\n(.*?)```", read("README.md"), re.S)
    commands = [b.strip() for b in blocks if "python -m pytest" in b]
    assert len(commands) == 1, commands
    return commands[0]


def workflow() -> dict[Any, Any]:
    doc = yaml.safe_load(read(".github", "workflows", "ci.yml"))
    assert isinstance(doc, dict)
    return doc


def steps() -> list[dict[str, Any]]:
    jobs = workflow()["jobs"]
    assert list(jobs) == ["test"]
    out = jobs["test"]["steps"]
    assert isinstance(out, list)
    return out


def lint(text: str) -> list[str]:
    conf = YamlLintConfig(file=os.path.join(REPO, ".yamllint.yml"))
    return [f"{p.line}:{p.column} {p.level} {p.desc} ({p.rule})" for p in linter.run(text, conf)]


def test_yamllint_is_clean() -> None:
    assert lint(read(".github", "workflows", "ci.yml")) == []


def test_the_lint_catches_what_it_should() -> None:
    assert any("duplication of key" in p for p in lint("a: 1\na: 2\n"))
    assert any("syntax error" in p for p in lint("jobs:\n  test:\n    - a\n   b: 1\n"))
    assert any("trailing spaces" in p for p in lint("a: 1 \n"))


def test_triggers_and_permissions() -> None:
    doc = workflow()
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(on) >= {"push", "pull_request"}
    assert doc["permissions"] == {"contents": "read"}


def test_matrix_is_linux_and_macos_on_every_supported_python() -> None:
    job = workflow()["jobs"]["test"]
    matrix = job["strategy"]["matrix"]
    assert matrix["os"] == ["ubuntu-latest", "macos-latest"]
    assert matrix["python"] == ["3.11", "3.12", "3.13"]
    assert 'requires-python = ">=3.11"' in read("pyproject.toml")  # the oldest in the matrix is the oldest supported
    assert job["runs-on"] == "${{ matrix.os }}"
    assert job["strategy"]["fail-fast"] is False
    assert isinstance(job["timeout-minutes"], int)


def test_every_step_is_an_action_at_a_version_or_a_command() -> None:
    for step in steps():
        assert ("uses" in step) != ("run" in step), step
        if "uses" in step:
            assert re.fullmatch(r"actions/[a-z-]+@v\d+", step["uses"]), step
    python = next(s for s in steps() if s.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "${{ matrix.python }}"


def test_linux_runs_the_readme_command_and_macos_the_same_without_the_e2e_part() -> None:
    readme = readme_test_command()
    assert readme in read(".ci", "run")  # .ci/run is the README's command
    assert E2E in readme
    runs = {s["if"]: s["run"] for s in steps() if "run" in s}
    assert set(runs) == {"runner.os == 'Linux'", "runner.os == 'macOS'"}
    assert runs["runner.os == 'Linux'"].strip() == ".ci/run"
    assert runs["runner.os == 'macOS'"].strip() == readme.replace(E2E, "")


@pytest.mark.parametrize("text", [open(WORKFLOW, encoding="utf-8").read()])
def test_expressions_name_only_known_contexts(text: str) -> None:
    exprs = re.findall(r"\$\{\{(.*?)\}\}", text)
    assert exprs and text.count("${{") == len(exprs)
    for e in exprs:
        assert re.fullmatch(r"\s*(matrix\.(os|python)|github\.ref)\s*", e), e
