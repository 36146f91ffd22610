"""`perfd run` and `perfd stats` never print a name from settings, or a model's answer, raw to a terminal.

A model name from settings holding ESC / OSC 52 (a clipboard write) or a screen clear is shown escaped
by `run` (in-process and through the daemon) and `stats`; the model's answer on a terminal keeps its
newlines and tabs and loses every other control, while piped or with --json it is the answer as sent.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

from fakeserver import FakeServer
from test_run_daemon import DaemonWs, dws  # noqa: F401  (the fixture, shared)

HOSTILE_MODEL = "fake\x1b]52;c;aGk=\x07\x1b[2J"
TOML_MODEL = "fake\\u001b]52;c;aGk=\\u0007\\u001b[2J"
ANSWER = "line one\n\tindented\x1b]52;c;aGk=\x07 \x1b[2J end\r\x9b1m"


def _hostile_model(w: DaemonWs, server: FakeServer) -> None:
    with open(os.path.join(w.root, "perfd.toml"), "w") as f:
        f.write(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "{TOML_MODEL}"\n')
    w.trust()


def test_a_model_name_with_escapes_is_shown_escaped_by_run_in_both_modes_and_by_stats(
        dws: DaemonWs, server: FakeServer) -> None:  # noqa: F811
    _hostile_model(dws, server)
    code, out, err = dws.run("run", "@DOCS-SITE", "2.1")  # in-process: no daemon yet
    assert code == 0, err
    assert "\x1b" not in err and "\x07" not in err and "fake\\e]52;c;aGk=\\x07\\e[2J" in err
    dws.start()
    code, out, err = dws.run("run", "@DOCS-SITE", "2.2", "--no-cache")
    assert code == 0, err
    assert "\x1b" not in err and "\x07" not in err and "fake\\e]52;c;aGk=\\x07\\e[2J" in err
    code, text, err = dws.run("stats")
    assert code == 0, err
    assert "\x1b" not in text and "model: fake\\e]52;c;aGk=\\x07\\e[2J at " in text
    code, prom, err = dws.run("stats", "--prometheus")
    assert code == 0 and "\x1b" not in prom and "\x07" not in prom


def _run_on_a_terminal(w: DaemonWs, *args: str) -> str:
    """stdout of `perfd run` on a pseudo-terminal (stderr piped): what a person's screen receives."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "perfd", *args], cwd=w.root, env=w.environ, stdout=slave,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    got = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        got += chunk
    p.wait(30)
    os.close(master)
    assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    return got.decode("utf-8", "replace").replace("\r\n", "\n")  # the terminal's own line ends


def test_an_answer_on_a_terminal_keeps_lines_and_tabs_and_no_other_control_in_both_modes(
        dws: DaemonWs, server: FakeServer) -> None:  # noqa: F811
    for mode in ("in-process", "daemon"):
        if mode == "daemon":
            dws.start()
        server.script({"reply": ANSWER})
        screen = _run_on_a_terminal(dws, "run", "@DOCS-SITE", "2.1", "--no-cache")
        assert "\x1b" not in screen and "\x07" not in screen and "\x9b" not in screen, (mode, screen)
        assert "line one\n\tindented\\e]52;c;aGk=\\x07 \\e[2J end\\r\\x9b1m" in screen, (mode, screen)
    # Piped, the answer is the answer: nothing escaped.
    server.script({"reply": ANSWER})
    code, out, err = dws.run("run", "@DOCS-SITE", "2.1", "--no-cache")
    assert code == 0 and out.startswith(ANSWER.replace("\r", "\n")), err  # (text mode reads a CR as a newline)


def _terminal_stdout(w: DaemonWs, *args: str) -> str:
    """stdout of a perfd command on a pseudo-terminal."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "perfd", *args], cwd=w.root, env=w.environ, stdout=slave,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    got = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    p.wait(30)
    os.close(master)
    return got.decode("utf-8", "replace").replace("\r\n", "\n")


def test_a_plans_text_reaches_a_terminal_without_its_escapes_and_a_pipe_as_it_is(
        dws: DaemonWs, server: FakeServer) -> None:  # noqa: F811
    plan = os.path.join(dws.root, "work-space", "plans", "a_real-use-cases", "DOCS-SITE", "PLAN_DOCS-SITE.md")
    with open(plan, encoding="utf-8") as f:
        text = f.read()
    with open(plan, "w", encoding="utf-8") as f:
        f.write(text.replace("# PLAN: Documentation Site", "# PLAN: Docs\x1b]52;c;aGk=\x07\x1b[2J — “site”\u202e"))
    for mode in ("in-process", "daemon"):
        extra = ("--no-daemon",) if mode == "in-process" else ()
        if mode == "daemon":
            dws.start()
        screen = _terminal_stdout(dws, "generate", "@DOCS-SITE", "--next", *extra)
        assert "Docs\\e]52;c;aGk=\\x07\\e[2J — “site”\\u202e" in screen, (mode, screen[:2000])
        assert "\x1b" not in screen and "\x07" not in screen and "\u202e" not in screen
        piped = subprocess.run([sys.executable, "-m", "perfd", "generate", "@DOCS-SITE", "--next", *extra],
                               cwd=dws.root, env=dws.environ, capture_output=True, timeout=30)
        assert b"Docs\x1b]52;c;aGk=\x07\x1b[2J" in piped.stdout  # piped: the prompt as the plan wrote it
