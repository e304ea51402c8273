"""The real thing in a real terminal: `maillab` in tmux at 80x24, a raw-socket SMTP session, on screen."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maillab.lab.state import StateDir

from conftest import free_offset, maildir_messages, wait_for
from netutil import require_tool
from test_tui_support import course_session

ROOT = Path(__file__).resolve().parent.parent


class Tmux:
    """A private tmux server (its own socket), so the test never touches the user's sessions."""

    def __init__(self, tool: str, name: str) -> None:
        self.tool, self.server, self.name = tool, name, name     # server socket; current session

    def run(self, *args: str) -> str:
        out = subprocess.run([self.tool, "-L", self.server, *args], capture_output=True, text=True, timeout=20)
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def tmux(tmp_path):
    tool = require_tool("tmux")
    t = Tmux(tool, f"maillab-test-{os.getpid()}-{time.monotonic_ns()}")
    yield t
    t.run("kill-server")


def start_lab(tmux: Tmux, state: Path, env: dict[str, str] | None = None) -> int:
    """`maillab --state DIR --port-offset N` in an 80x24 pane (with `env` added to its environment);
    returns the SMTP port once it listens."""
    for attempt in range(3):
        offset = free_offset()
        command = " ".join(shlex.quote(x) for x in (sys.executable, "-m", "maillab", "--state", str(state),
                                                     "--port-offset", str(offset)))
        window = f"{tmux.name}-{attempt}"
        extra = [x for k, v in (env or {}).items() for x in ("-e", f"{k}={v}")]
        tmux.run("new-session", "-d", "-s", window, "-x", "80", "-y", "24", "-c", str(ROOT),
                 "-e", "TERM=xterm-256color", *extra, f"{command}; echo EXITED; sleep 30")
        tmux.name = window
        port = 2525 + offset
        wait_for(lambda: accepts(port) or "EXITED" in tmux.screen(), 30)
        if accepts(port):
            return port
        if "cannot listen" not in tmux.screen():        # not a port taken meanwhile: a real failure
            break
    raise AssertionError(f"the lab did not start:\n{tmux.screen()}")


def test_maillab_in_tmux_shows_a_typed_session_at_80x24(tmux, tmp_path):
    state = tmp_path / "state"
    port = start_lab(tmux, state)
    assert wait_for(lambda: "maillab · world default" in tmux.screen(), 15,
                    what=lambda: f"the title in:\n{tmux.screen()}")

    qid = course_session(port)
    assert qid
    assert wait_for(lambda: "221 2.0.0 Bye" in tmux.screen(), 15, what=lambda: f"221 Bye in:\n{tmux.screen()}")
    screen = tmux.screen()
    assert f"queued as {qid}" in screen and "S: 354 End data with" in screen
    assert "smtp1.syr.edu" in screen
    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    assert "Dialogues" in lines[1] and "Quit" in lines[-1]

    def subjects() -> list[str]:
        return [m["Subject"] for m in maildir_messages(state, "mafudge@syr.edu")]
    assert wait_for(subjects, 20, what=lambda: f"delivery before quitting:\n{tmux.screen()}")   # then quit
    tmux.run("send-keys", "-t", tmux.name, "q")
    assert wait_for(lambda: "EXITED" in tmux.screen(), 20, what=lambda: f"EXITED in:\n{tmux.screen()}")
    assert not StateDir(state).in_use() and not accepts(port)
    assert subjects() == ["You are on the naughty list"]


def test_compose_hands_the_body_to_editor_and_takes_back_what_it_wrote(tmux, tmp_path):
    editor = tmp_path / "editor.sh"         # an $EDITOR that appends a line to the file it is given
    editor.write_text("#!/bin/sh\nprintf 'Written in the editor, line two.\\n' >> \"$1\"\n")
    editor.chmod(0o755)
    start_lab(tmux, tmp_path / "state", env={"EDITOR": str(editor), "VISUAL": ""})
    keys = lambda *k: tmux.run("send-keys", "-t", tmux.name, *k)          # noqa: E731
    assert wait_for(lambda: "maillab · world default" in tmux.screen(), 15, what=tmux.screen)
    keys("m")
    assert wait_for(lambda: "Who are you?" in tmux.screen(), 15, what=tmux.screen)
    keys("Enter")                           # the first user of the world
    assert wait_for(lambda: "IMAP · INBOX" in tmux.screen(), 20, what=tmux.screen)
    keys("c")
    assert wait_for(lambda: "New message" in tmux.screen(), 15, what=tmux.screen)
    keys("Tab", "Tab", "Tab", "Tab", "Tab")   # To, Cc, Bcc, Subject, Attach: the body
    keys("-l", "Dear Santa,")
    keys("C-e")
    assert wait_for(lambda: "Written in the editor, line two." in tmux.screen(), 15, what=tmux.screen)
    assert "Dear Santa," in tmux.screen()
    keys("Escape")
    assert wait_for(lambda: "New message" not in tmux.screen(), 10, what=tmux.screen)
