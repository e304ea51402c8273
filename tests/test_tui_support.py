"""Helpers for the TUI tests (no tests here): a running app with its lab, screen text, SMTP by hand."""

from __future__ import annotations

import asyncio
import html
import inspect
import re
import smtplib
import socket
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable

from textual.pilot import Pilot
from textual.widgets import Log, RichLog

from maillab.base.clock import Clock
from maillab.lab.state import StateDir
from maillab.lab.supervisor import Lab
from maillab.lab.world import World, load_world
from maillab.net.ports import Ports
from maillab.tui.app import MailLabApp
from maillab.tui.rowlist import RowList

from conftest import free_offset

_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>')


def screen_text(app: MailLabApp, save: Path | None = None) -> str:
    """The screen as plain text, read from Textual's own SVG screenshot (saved to `save`)."""
    svg = app.export_screenshot()
    if save is not None:
        save.write_text(svg, encoding="utf-8")
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in _TEXT.finditer(svg):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
    return "\n".join("".join(t for _, t in sorted(parts)) for _, parts in sorted(rows.items())).replace("\xa0", " ")


def richlog_text(log: RichLog) -> str:
    return "\n".join(strip.text for strip in log.lines)


def log_text(log: Log) -> str:
    return "\n".join(log.lines)


def table_rows(table: RowList) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def until(pilot: Pilot, predicate: Callable[[], object], timeout: float = 10.0) -> object:
    """Let the app run until `predicate()` is truthy and return that value; AssertionError
    (naming what was awaited) if it is still false after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s in vain for: {_described(predicate)}")
        await pilot.pause(0.05)


def _described(predicate: Callable[[], object]) -> str:
    """The source line of a lambda, or the function's name."""
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return getattr(predicate, "__qualname__", repr(predicate))


@asynccontextmanager
async def running_app(tmp_path: Path, size: tuple[int, int] = (120, 40), allow_errors: bool = False,
                      presenter: bool = False, world: World | None = None,
                      **lab_options: object) -> AsyncIterator[tuple[MailLabApp, Pilot]]:
    """The TUI with a lab of `world` (the default world) on free ports, started and ready.
    At the end, and once it has closed, no panel may have hit an error, unless `allow_errors`."""
    for _ in range(5):
        lab = Lab(world=world or load_world(), state=StateDir(tmp_path / "state"), ports=Ports(free_offset()),
                  clock=Clock(), session_timeout=30, smtp_timeout=5, **lab_options)  # type: ignore[arg-type]
        app = MailLabApp(lab, presenter=presenter)
        async with app.run_test(size=size, notifications=True) as pilot:
            await until(pilot, lambda: app.lab_running or app.startup_error, 20)
            if app.startup_error:
                continue            # a port was taken meanwhile: try another offset
            assert app.lab_running, "the lab did not start"
            yield app, pilot
            log = app.lab.state.log_dir / "tui-errors.log"
            if not allow_errors:
                assert not log.exists(), log.read_text()
        if not allow_errors:            # nor while it closed (a timer firing as the screens go)
            assert not log.exists(), log.read_text()
        return
    raise RuntimeError(f"could not start a lab: {app.startup_error}")


def course_session(port: int, host: str = "127.0.0.1", rcpt: str = "mafudge@syr.edu",
                   sender: str = "santa@northpole.org", pause: float = 0.0) -> str:
    """The course's hand-typed SMTP session, with a raw socket; returns the queue ID."""
    s = socket.create_connection((host, port), timeout=10)
    f = s.makefile("rb")
    queued = ""
    try:
        f.readline()
        for line in (b"HELO northpole.org", f"MAIL FROM: <{sender}>".encode(), f"RCPT TO: <{rcpt}>".encode(),
                     b"DATA", b"Subject: You are on the naughty list\r\n\r\nfyi.\r\n."):
            s.sendall(line + b"\r\n")
            reply = f.readline().decode()
            if pause:
                time.sleep(pause)
            if reply.startswith("250 2.0.0") and "queued as" in reply:
                queued = reply.rsplit(" ", 1)[1].strip()
        s.sendall(b"QUIT\r\n")
        f.readline()
    finally:
        s.close()
    return queued


def submit(address: str, port: int, user: str = "santa@northpole.org", rcpt: str = "mafudge@syr.edu",
           subject: str = "Ho ho ho", tls: bool = True) -> None:
    """Send through submission with STARTTLS (unless not `tls`: a world with auth_over_plaintext)
    and AUTH PLAIN (smtplib), as a mail client does."""
    with smtplib.SMTP(address, port, timeout=10) as smtp:
        smtp.ehlo("workshop.northpole.org")
        if tls:
            smtp.starttls()             # the TUI is under test here, not the certificate
            smtp.ehlo("workshop.northpole.org")
        smtp.login(user, "maillab")
        smtp.sendmail(user, [rcpt], f"From: <{user}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n\r\nHi.\r\n")


async def in_thread(fn: Callable[..., object], *args: object, **kwargs: object) -> object:
    """Run a blocking client in a thread: the lab shares the test's event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)
