"""Exactly-once delivery across restarts of `maillab serve` (issue 13, restart item).

Client threads submit a stream of uniquely numbered messages (smtplib, AUTH on
smtp1.syr.edu's submission port), each to a local mailbox
(mafudge@syr.edu) and every other one also to santa@northpole.org, relayed by
smtp1.syr.edu to mail.northpole.org over a real SMTP hop.  Meanwhile the lab is
stopped (SIGTERM) or killed (SIGKILL) and restarted on the same state folder,
`CYCLES` times.  At the end, once the spools are empty, each message that got
its 250 must be in each of its recipients' Maildirs exactly once (and have
exactly one notice for nobody@), and no message (acknowledged or not) more than
once.  A SIGTERM stop lets the hops in
flight finish, so no hop is sent twice at all; after a kill -9 the receiving host
recognises the hops sent again (`maillab.queue.inbound`) and the maillog says so.
The figures are printed (run with -s; MAILLAB_RESTART_CYCLES sets the count).
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import threading
from collections import Counter
from pathlib import Path

import pytest

from conftest import READY, free_offset, maildir_messages, wait_for

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

CYCLES = int(os.environ.get("MAILLAB_RESTART_CYCLES", "10"))
PER_CYCLE = 15            # acknowledged messages between two restarts (all clients together)
CLIENTS = 3
LOCAL, RELAYED = "mafudge@syr.edu", "santa@northpole.org"
UNKNOWN = "nobody@syr.edu"        # accepted, then bounced by the MDA: a notice to LOCAL, the sender


class Submitter(threading.Thread):
    """One client: numbers n = first, first + step, ...; records which recipients got a 250."""

    def __init__(self, port: int, tag: str, first: int, step: int, book: "Book") -> None:
        super().__init__(daemon=True)
        self.port, self.tag, self.n, self.step, self.book = port, tag, first, step, book
        self.halt = threading.Event()
        self.errors: Counter[str] = Counter()

    def _session(self) -> smtplib.SMTP:
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=20)
        try:
            s.login(LOCAL, "maillab")
        except BaseException:
            s.close()
            raise
        return s

    def run(self) -> None:
        session: smtplib.SMTP | None = None
        while not self.halt.is_set():
            if session is None:
                try:
                    session = self._session()
                except (OSError, smtplib.SMTPException) as e:
                    self.errors[type(e).__name__] += 1
                    self.halt.wait(0.05)        # the lab is restarting: connect again
                    continue
            n, self.n = self.n, self.n + self.step
            rcpts = ([LOCAL, RELAYED] if n % 2 else [LOCAL]) + ([UNKNOWN] if n % 5 == 0 else [])
            body = (f"From: {LOCAL}\r\nTo: {', '.join(rcpts)}\r\nSubject: seq {n}\r\n"
                    f"Message-ID: <{self.tag}.{n}@test>\r\nX-Seq: {self.tag}.{n}\r\n\r\n"
                    + f"message {n}\r\n" * 40).encode()
            try:
                refused = session.sendmail(LOCAL, rcpts, body)
            except (OSError, smtplib.SMTPException) as e:
                self.errors[type(e).__name__] += 1      # no 250 seen: may or may not be queued
                session.close()
                session = None
                continue
            self.book.acked(n, [r for r in rcpts if r not in refused])
        if session is not None:
            try:
                session.quit()
            except (OSError, smtplib.SMTPException):
                session.close()


class Book:
    """Which numbers got a 250, for which recipients (shared by the clients)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_number: dict[int, list[str]] = {}

    def acked(self, n: int, rcpts: list[str]) -> None:
        with self.lock:
            self.by_number[n] = rcpts

    def count(self) -> int:
        with self.lock:
            return len(self.by_number)


def _arrived(state: Path, tag: str) -> dict[str, Counter[int]]:
    """Copies per number in each mailbox; UNKNOWN: the non-delivery notices in LOCAL's, by the
    number in the original's headers they attach."""
    counts: dict[str, Counter[int]] = {UNKNOWN: Counter()}
    for address in (LOCAL, RELAYED):
        counts[address] = Counter()
        for m in maildir_messages(state, address):
            if m.get_content_type() == "multipart/report":
                found = re.search(rf"X-Seq: {tag}\.(\d+)", m.as_string())
                counts[UNKNOWN][int(found[1]) if found else -1] += 1
            elif (m["X-Seq"] or "").startswith(f"{tag}."):
                counts[address][int(m["X-Seq"].rpartition(".")[2])] += 1
    return counts


def _replays_recognised(state: Path) -> int:
    """Hops a host was sent again after a restart and did not queue twice (its maillog says so)."""
    return sum(p.read_text(errors="replace").count("not again (a hop replayed")
               for p in (state / "log").glob("maillog*"))


def _queued(state: Path) -> int:
    return sum(1 for _ in (state / "spool").rglob("*.msg"))


def _stop_start_cycles(served, tmp_path: Path, sig: int, cycles: int) -> dict:
    state, offset, tag = tmp_path / "state", free_offset(), f"r{sig}"
    lab = served(state, offset)
    book = Book()
    clients = [Submitter(lab.ports.submission, tag, w, CLIENTS, book) for w in range(CLIENTS)]
    for c in clients:
        c.start()
    codes = []
    try:
        for cycle in range(cycles + 1):
            target = book.count() + PER_CYCLE
            wait_for(lambda: book.count() >= target, timeout=40,
                     what=lambda: f"cycle {cycle}: {target} acknowledged, got {book.count()}; "
                                  f"client errors {[dict(c.errors) for c in clients]}")
            if cycle == cycles:
                break
            codes.append(lab.kill(sig))     # mid-stream: deliveries and sessions in flight
            lab = served(state, offset)
            # the log file is per offset, shared by the runs: this run's own "ready" line
            wait_for(lambda: lab.proc.poll() is not None or lab.output_bytes().count(READY) >= cycle + 2,
                     timeout=30, what=lambda: f"restart {cycle + 1} to be ready:\n{lab.output()[-3000:]}")
            assert lab.proc.poll() is None, lab.output()[-3000:]
    finally:
        for c in clients:
            c.halt.set()
        for c in clients:
            c.join(30)
    assert not any(c.is_alive() for c in clients)
    wanted = {(r, n) for n, rcpts in book.by_number.items() for r in rcpts}

    def settled() -> bool:
        counts = _arrived(state, tag)
        return _queued(state) == 0 and all(counts[r][n] for r, n in wanted)

    wait_for(settled, timeout=60, what=lambda: f"empty spools ({_queued(state)} left) and every "
                                               f"acknowledged copy in its maildir")
    counts = _arrived(state, tag)
    lost = sorted((r, n) for r, n in wanted if counts[r][n] == 0)
    duplicates = {r: sorted(n for n, c in counts[r].items() if c > 1) for r in counts}
    figures = {"signal": signal.Signals(sig).name, "cycles": cycles, "acknowledged": len(book.by_number),
               "copies expected": len(wanted), "local copies": sum(counts[LOCAL].values()),
               "relayed copies": sum(counts[RELAYED].values()),
               "bounce notices": sum(counts[UNKNOWN].values()), "lost": len(lost),
               "local duplicates": len(duplicates[LOCAL]), "relayed duplicates": len(duplicates[RELAYED]),
               "duplicate notices": len(duplicates[UNKNOWN]),
               "relayed replays recognised": _replays_recognised(state), "exit codes": sorted(set(codes))}
    print(figures)
    lab.stop()
    return figures | {"lost list": lost, "duplicate lists": duplicates}


@pytest.mark.timeout(170)
def test_sigterm_stop_start_cycles_lose_nothing_and_duplicate_nothing(served, tmp_path):
    f = _stop_start_cycles(served, tmp_path, signal.SIGTERM, CYCLES)
    assert f["exit codes"] == [0]
    assert f["lost list"] == [] and f["duplicate lists"] == {LOCAL: [], RELAYED: [], UNKNOWN: []}, f
    # a clean stop lets the hops in flight finish (listeners still open): none is sent again
    assert f["relayed replays recognised"] == 0, f


@pytest.mark.timeout(170)
def test_kill_9_cycles_lose_nothing_and_duplicate_nothing(served, tmp_path):
    f = _stop_start_cycles(served, tmp_path, signal.SIGKILL, CYCLES)
    assert f["exit codes"] == [-signal.SIGKILL]
    assert f["lost list"] == [] and f["duplicate lists"] == {LOCAL: [], RELAYED: [], UNKNOWN: []}, f
