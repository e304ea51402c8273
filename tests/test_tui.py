"""The TUI embeds the lab on its own loop: a student's session shows up live."""

from __future__ import annotations

import asyncio
import socket

from textual.widgets import Log

from maillab.lab import Lab
from maillab.ports import Ports
from maillab.state import StateDir
from maillab.tui.app import MailLabApp
from maillab.world import load_world

from conftest import free_offset


def type_session(port: int) -> None:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    for line in (b"helo northpole.org", b"mail from: santa@northpole.org", b"rcpt to: mafudge@syr.edu"):
        s.sendall(line + b"\n")
        f.readline()
    s.sendall(b"quit\n")
    f.readline()
    s.close()


async def test_a_typed_session_appears_in_the_dialogues_panel(tmp_path):
    lab = Lab(world=load_world(), state=StateDir(tmp_path / "state"), ports=Ports(free_offset()))
    app = MailLabApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            if lab.ctx is not None:
                break
            await pilot.pause(0.05)
        await asyncio.to_thread(type_session, lab.ports.smtp)
        dialogues = app.query_one("#dialogues", Log)
        for _ in range(60):
            await pilot.pause(0.05)
            text = "\n".join(dialogues.lines)
            if "221" in text:
                break
        assert ">>> helo northpole.org" in text
        assert "<<< 250 2.1.5 Ok" in text
        assert "smtp1.syr.edu/smtp/" in text
        maillog = "\n".join(app.query_one("#maillog", Log).lines)
        assert "connect from smtp1.syr.edu[127.0.0.1]" in maillog
        await pilot.press("q")
    assert lab.ctx is not None and not lab.state.in_use()
