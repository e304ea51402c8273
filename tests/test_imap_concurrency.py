"""Several imaplib sessions over real sockets on one mailbox, each reply checked against a model.

Each session (seeded random) APPENDs, STOREs, EXPUNGEs and SEARCHes for a
few seconds on the INBOX of a started lab.  `Model` keeps what the session
has been told: its list of UIDs (sequence number n is uids[n-1]), changed
only by the EXISTS and EXPUNGE responses it received, and the flags
announced by the last `* FLAGS`.  Every untagged line is checked in the
order it arrived (imaplib's line reader is recorded):

- `* n EXPUNGE` names an existing sequence number; `* n RECENT` <= EXISTS, and
  no more than the messages of the view that FETCH shows \\Recent (plus those
  expunged before they could be fetched);
- `* n FETCH` names an existing sequence number with its UID, UIDs of new
  messages are strictly increasing, and each keyword in FLAGS was announced
  by `* FLAGS` before (RFC 3501 §7.2.6);
- SEARCH results are inside the view; session i alone sets keyword `$si`, so
  `UID SEARCH KEYWORD $si` must return exactly the UIDs it set it on, except
  messages someone expunged that it has not heard of yet (each such one must
  be reported expunged by the end).
"""

from __future__ import annotations

import asyncio
import imaplib
import random
import re
import threading
import time
from collections import Counter

import pytest

from test_imap_server import SYR, USER

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

SESSIONS = 10
SECONDS = 6.0
NEW_KEYWORDS = 1                # per session: with the $si, within a Maildir's 26 keywords
_UNTAGGED = re.compile(r"\* (\d+) (EXISTS|RECENT|EXPUNGE|FETCH)(.*)")
_FLAGS = re.compile(r"FLAGS \(([^)]*)\)")
_UID = re.compile(r"UID (\d+)")
SYSTEM = {"\\answered", "\\flagged", "\\deleted", "\\seen", "\\draft", "\\recent"}


class Recording(imaplib.IMAP4):
    """imaplib, with every response line it reads kept in order."""

    def __init__(self, host: str, port: int) -> None:
        self.seen: list[str] = []
        super().__init__(host, port, timeout=20)

    def _get_line(self) -> bytes:
        line = super()._get_line()
        self.seen.append(line.decode("utf-8", "replace"))
        return line


class Model:
    def __init__(self, name: str) -> None:
        self.name = name
        self.uids: list[int | None] = []
        self.announced: set[str] = set()
        self.recent_flag: dict[int, bool] = {}     # UID -> \\Recent as its last FETCH FLAGS said
        self.last_recent: int | None = None
        self.errors: list[str] = []

    def check_recent(self) -> None:
        """The last RECENT counts only messages of the view: at most those FETCH showed \\Recent
        plus those not fetched yet (expunged meanwhile)."""
        if self.last_recent is None:
            return
        shown = sum(1 for u in self.uids if u is not None and self.recent_flag.get(u))
        unknown = self.uids.count(None)
        if self.last_recent > shown + unknown:
            self.fail(f"RECENT {self.last_recent} but {shown} messages of the view are \\Recent"
                      f" (+{unknown} not fetched)")
        self.last_recent = None

    def fail(self, text: str) -> None:
        self.errors.append(f"{self.name}: {text}")

    def take(self, lines: list[str]) -> list[int] | None:
        """Apply the untagged lines of one command; the SEARCH numbers if there was one."""
        search = None
        for line in lines:
            if line.startswith("* FLAGS ("):
                self.announced = {f.lower() for f in line[9:line.rindex(")")].split()}
                continue
            if line.startswith("* SEARCH"):
                search = [int(n) for n in line[8:].split() if n.isdigit()]
                continue
            m = _UNTAGGED.match(line)
            if m is None:
                continue
            n, kind, rest = int(m.group(1)), m.group(2), m.group(3)
            if kind == "EXISTS":
                if n < len(self.uids):
                    self.fail(f"EXISTS {n} below the {len(self.uids)} messages known: {line}")
                self.uids.extend([None] * (n - len(self.uids)))
            elif kind == "RECENT":
                if n > len(self.uids):
                    self.fail(f"RECENT {n} > EXISTS {len(self.uids)}")
                self.last_recent = n
            elif kind == "EXPUNGE":
                if not 1 <= n <= len(self.uids):
                    self.fail(f"EXPUNGE of sequence number {n} of {len(self.uids)}")
                else:
                    del self.uids[n - 1]
            else:
                self.fetch(n, rest, line)
        return search

    def fetch(self, n: int, rest: str, line: str) -> None:
        if not 1 <= n <= len(self.uids):
            self.fail(f"FETCH of sequence number {n} of {len(self.uids)}: {line}")
            return
        uid_m, flags_m = _UID.search(rest), _FLAGS.search(rest)
        if uid_m:
            uid = int(uid_m.group(1))
            known = self.uids[n - 1]
            if known is None:
                below = max((u for u in self.uids[:n - 1] if u is not None), default=0)
                above = min((u for u in self.uids[n:] if u is not None), default=uid + 1)
                if not below < uid < above:
                    self.fail(f"message {n} has UID {uid}: UIDs not increasing ({below}, {above})")
                self.uids[n - 1] = uid
            elif known != uid:
                self.fail(f"sequence number {n} is UID {known}, FETCH says {uid}")
        if flags_m and self.uids[n - 1] is not None:
            self.recent_flag[self.uids[n - 1]] = "\\recent" in flags_m.group(1).lower().split()
        if flags_m:
            for f in flags_m.group(1).split():
                if f.lower() not in SYSTEM and f.lower() not in self.announced:
                    self.fail(f"keyword {f} in FETCH before * FLAGS announced it: {line}")


class Session:
    def __init__(self, lab, index: int, seed: int, stop: float) -> None:
        self.index = index
        self.keyword = f"$s{index}"
        self.rng = random.Random(seed)
        self.stop = stop
        self.model = Model(f"session {index} (seed {seed})")
        self.mine: set[int] = set()         # UIDs this session set its keyword on
        self.suspects: set[int] = set()     # expected in a SEARCH but missing: must be expunged
        self.port = lab.ports.imap
        self.new_keywords = 0

    def run(self, command, *args: str) -> tuple[str, list[int] | None]:
        self.c.seen.clear()
        typ, _data = command(*args)
        search = self.model.take(self.c.seen)
        self.fill_uids()
        self.model.check_recent()
        return typ, search

    def fill_uids(self) -> None:
        """FETCH the UIDs of the messages announced by EXISTS (checked as FETCH lines)."""
        unknown = [i for i, u in enumerate(self.model.uids) if u is None]
        if unknown:
            self.c.seen.clear()
            self.c.fetch(f"{unknown[0] + 1}:*", "(UID FLAGS)")
            self.model.take(self.c.seen)

    def step(self) -> None:
        rng, c, model = self.rng, self.c, self.model
        op = rng.random()
        known = [u for u in model.uids if u is not None]
        if op < 0.20 or len(known) < 3:
            flags = rng.choice(("(\\Seen)", "()", "(\\Deleted)"))     # \Deleted: soon expunged by someone
            body = f"Subject: s{self.index}\r\n\r\nbody {rng.random()}\r\n".encode()
            self.run(c.append, "INBOX", flags, None, body)
        elif op < 0.35:
            uid = rng.choice(known)
            self.run(c.uid, "STORE", str(uid), "+FLAGS", f"({self.keyword})")
            self.mine.add(uid)
        elif op < 0.40 and self.new_keywords < NEW_KEYWORDS:
            self.new_keywords += 1
            self.run(c.uid, "STORE", str(rng.choice(known)), "+FLAGS", f"($n{self.index}x{self.new_keywords})")
        elif op < 0.48:
            self.run(c.uid, "STORE", str(rng.choice(known)), "+FLAGS", "(\\Deleted)")
        elif op < 0.53:
            self.run(c.expunge)
        elif op < 0.75:     # every file renamed: the searches read bodies meanwhile
            self.run(c.store, "1:*", rng.choice(("+FLAGS.SILENT", "-FLAGS.SILENT")), "(\\Seen)")
        elif op < 0.85:
            self.check_keyword_search()
        else:
            before = list(model.uids)       # SEARCH's view: its EXISTS come after the results
            _typ, hits = self.run(c.search, None, "BODY", "body")     # every body says "body"
            if hits is not None and any(not 1 <= n <= len(before) for n in hits):
                model.fail(f"SEARCH BODY {hits} outside 1:{len(before)}")
            found = set(hits or ())
            self.suspects |= {u for n, u in enumerate(before, 1) if u is not None and n not in found}

    def check_keyword_search(self) -> None:
        body = ("BODY", "body") if self.rng.random() < 0.5 else ()    # every body says "body"
        view = {u for u in self.model.uids if u is not None}    # as the SEARCH ran: its EXPUNGEs follow it
        self.mine &= view
        _typ, hits = self.run(self.c.uid, "SEARCH", "KEYWORD", self.keyword, *body)
        got = set(hits or ())
        if got - view:
            self.model.fail(f"UID SEARCH returned UIDs not in the view: {sorted(got - view)}")
        if got - self.mine:
            self.model.fail(f"UID SEARCH KEYWORD {self.keyword} returned {sorted(got - self.mine)} never given it")
        self.suspects |= self.mine - got

    def main(self) -> None:
        c = self.c = Recording(SYR, self.port)
        c.login(USER, "maillab")
        self.run(c.select, "INBOX")
        while time.monotonic() < self.stop and len(self.model.errors) < 20:
            self.step()
        self.run(c.noop)
        view = set(self.model.uids)
        for uid in sorted(self.suspects & view):
            self.model.fail(f"UID {uid} exists but a SEARCH that should have found it missed it")
        c.logout()


async def test_concurrent_sessions_keep_each_view_consistent(lab):
    seeds = [1000 + i for i in range(SESSIONS)]
    stop = time.monotonic() + SECONDS
    sessions = [Session(lab, i, seeds[i], stop) for i in range(SESSIONS)]
    crashes: list[BaseException] = []
    loop = asyncio.get_running_loop()
    finished = asyncio.Queue()

    def body(s: Session) -> None:       # own threads: the lab's executor serves the IMAP server
        try:
            s.main()
        except BaseException as e:      # reported below, with the model's errors
            crashes.append(e)
        finally:
            loop.call_soon_threadsafe(finished.put_nowait, s)

    for s in sessions:
        threading.Thread(target=body, args=(s,), daemon=True).start()
    for _ in sessions:
        await asyncio.wait_for(finished.get(), 60)      # raises TimeoutError if a session hangs
    errors = [e for s in sessions for e in s.model.errors]
    assert not crashes, crashes
    kinds = Counter(re.sub(r"[\d$]\S*", "#", e.split(": ", 1)[1])[:40] for e in errors)
    assert not errors, (f"{len(errors)} inconsistencies {dict(kinds)}, first ones:\n"
                        + "\n".join(errors[:15]))
    assert sum(len(s.mine) for s in sessions) > 0      # the run did exercise the searches
