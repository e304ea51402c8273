"""Fixtures that start real labs on loopback: in-process (`lab`) or as `maillab serve` (`served`),
and the waits tests use: `wait_for`/`async_wait_for` (AssertionError on time-out) and
`stays_false` (a bounded observation that something does not happen).

Every lab gets its own state folder and a port offset whose ports are free, so
the tests run while another lab (or another test run) is up.  A test (or a module, by
`pytestmark`) marked `@pytest.mark.world(auth_over_plaintext=True)` gets a lab whose world
has those settings changed (`lab`), or a world folder saying so (`served`'s `--world`,
`world_folder`): the way a test about something else logs in over plaintext.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import inspect
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from email.message import Message
from pathlib import Path
from typing import Callable, TypeVar

import pytest

from maillab.base import eventloop
from maillab.base.clock import Clock
from maillab.lab.state import StateDir
from maillab.lab.supervisor import Lab, LabError
from maillab.lab.world import default_world_path, load_world
from maillab.net.ports import Ports

T = TypeVar("T")

HOST_ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6",
                  "127.0.0.7", "127.0.0.66")


def pytest_configure(config):
    config.addinivalue_line("markers", "world(**settings): the test lab's world with these [lab] settings")


def world_settings(request) -> dict[str, object]:
    """The [lab] settings the test's `world` marks change (closest last, so it wins)."""
    settings: dict[str, object] = {}
    for mark in reversed(list(request.node.iter_markers("world"))):
        settings.update(mark.kwargs)
    return settings


def world_folder(folder: Path, **settings: object) -> Path:
    """A copy of the default world in `folder` with `settings` in lab.toml's [lab] table."""
    shutil.copytree(default_world_path(), folder)
    toml = folder / "lab.toml"
    text = toml.read_text()
    for key, value in settings.items():
        line = f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value)}"
        text, n = re.subn(rf"(?m)^{key} = .*$", line, text)
        if not n:
            text = text.replace("[lab]\n", f"[lab]\n{line}\n", 1)
    toml.write_text(text)
    return folder


def pytest_asyncio_loop_factories(config, item):
    """Every async test runs on the loop the lab ships with (maillab.base.eventloop)."""
    return {"uvloop": eventloop.new_loop}


def _ports_free(ports: Ports) -> bool:
    checks = [("127.0.0.1", ports.dns, socket.SOCK_DGRAM)]
    checks += [(a, p, socket.SOCK_STREAM) for a in HOST_ADDRESSES
               for p in (ports.smtp, ports.submission, ports.smtps, ports.imap, ports.imaps, ports.pop3,
                         ports.pop3s, ports.dns)]
    for address, port, kind in checks:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def free_offset() -> int:
    """A port offset whose lab ports are all free right now (and all five digits long, so a
    screen shows them at the same width in every run)."""
    for _ in range(100):
        offset = random.randrange(90, 600) * 100
        if _ports_free(Ports(offset)):
            return offset
    raise RuntimeError("no free port offset found")


@pytest.fixture
async def lab(tmp_path, request):
    """A running lab of the default world (changed by the test's `world` marks), in this test's
    event loop."""
    world = dataclasses.replace(load_world(), **world_settings(request))
    for _ in range(5):
        the_lab = Lab(world=world, state=StateDir(tmp_path / "state"), ports=Ports(free_offset()),
                      clock=Clock(), session_timeout=30)
        try:
            await the_lab.start()
            break
        except LabError:
            continue   # a port was taken between the check and the bind: try another offset
    else:
        pytest.fail("could not start a lab")
    yield the_lab
    await the_lab.stop()


def maildir_messages(state: Path, address: str) -> list[Message]:
    """The messages in a user's INBOX Maildir (new/ and cur/), oldest first."""
    local, domain = address.split("@")
    root = state / "mail" / domain / local
    for _ in range(10):   # the store may move a file from new/ to cur/ while we read
        files = [p for sub in ("new", "cur") if (root / sub).exists() for p in (root / sub).iterdir()]
        files.sort(key=lambda p: p.name)
        try:
            return [email.message_from_bytes(p.read_bytes()) for p in files]
        except FileNotFoundError:
            continue
    raise RuntimeError(f"{root}: files keep moving")


Waited = str | Callable[[], str] | None


def _named(predicate: Callable[[], object], what: Waited) -> str:
    """What a wait was for: `what` (a callable is asked only now, at the time-out, so it can show
    the state then), else the source line of `predicate`."""
    if callable(what):
        return what()
    if what:
        return what
    try:
        return inspect.getsource(predicate).strip().splitlines()[0]
    except (OSError, TypeError):
        return getattr(predicate, "__qualname__", repr(predicate))


def _timed_out(predicate: Callable[[], object], what: Waited, timeout: float, value: object) -> AssertionError:
    return AssertionError(f"timed out after {timeout:g} s waiting for {_named(predicate, what)} "
                          f"(last value {value!r:.300})")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
             what: Waited = None) -> T:
    """Poll `predicate` (a plain function) until it returns something truthy and return that;
    raise AssertionError naming `what` (or the predicate's source) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise _timed_out(predicate, what, timeout, value)
        time.sleep(interval)
    return value


async def async_wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
                         what: Waited = None) -> T:
    """`wait_for` for a test on the event loop: the loop runs while it waits."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise _timed_out(predicate, what, timeout, value)
        await asyncio.sleep(interval)
    return value


async def stays_false(predicate: Callable[[], object], duration: float, what: Waited = None,
                      interval: float = 0.02) -> None:
    """A deliberate, bounded observation that something does NOT happen: watch `predicate` for
    `duration` seconds (the loop runs meanwhile) and raise AssertionError if it ever holds.
    Passing proves only that it did not happen within `duration`."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if value := predicate():
            raise AssertionError(f"{_named(predicate, what)} happened (value {value!r:.300}) "
                                 f"within the {duration:g} s it was watched")
        await asyncio.sleep(interval)


READY = b"maillab: ready;"


class Served:
    """`maillab serve` in a subprocess, as a user runs it."""

    def __init__(self, state: Path, offset: int, extra: list[str] | None = None) -> None:
        self.state, self.ports = state, Ports(offset)
        self.log = open(state.parent / f"serve-{offset}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "maillab", "serve", "--state", str(state),
             "--port-offset", str(offset), *(extra or [])],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        # "maillab: ready;" exactly: an error such as "address already in use" also holds "ready"
        wait_for(lambda: self.proc.poll() is not None or READY in self.output_bytes(), 20,
                 what=lambda: f"maillab serve to say it is ready; its output:\n{self.output()}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"maillab serve did not start:\n{self.output()}")

    def output_bytes(self) -> bytes:
        self.log.flush()
        return Path(self.log.name).read_bytes()

    def output(self) -> str:
        return self.output_bytes().decode("utf-8", "replace")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        os.killpg(self.proc.pid, sig)
        return self.proc.wait(15)

    def stop(self) -> int:
        if self.proc.poll() is None:
            return self.kill(signal.SIGTERM)
        return self.proc.returncode


@pytest.fixture
def served(tmp_path, request):
    """A factory of `maillab serve` processes; all are stopped at the end.  Under `world` marks
    they run a world folder with those settings (unless `extra` gives a --world)."""
    procs: list[Served] = []
    settings = world_settings(request)

    def start(state: Path | None = None, offset: int | None = None, extra: list[str] | None = None) -> Served:
        if settings and "--world" not in (extra or []):
            folder = tmp_path / "world"
            extra = ["--world", str(folder if folder.exists() else world_folder(folder, **settings)), *(extra or [])]
        for attempt in range(5):
            try:
                s = Served(state or tmp_path / "state", offset if offset is not None else free_offset(), extra)
                break
            except RuntimeError as e:
                # a port taken between the check and the bind (another test run): try another offset
                if offset is not None or "cannot listen" not in str(e) or attempt == 4:
                    raise
        procs.append(s)
        return s
    yield start
    for s in procs:
        if s.proc.poll() is None:
            s.kill()
