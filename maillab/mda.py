"""The MDA: final delivery of a message into a user's Maildir.

Follows the Maildir rules (cr.yp.to/proto/maildir.html): write into `tmp/`
under a unique name, fsync, then rename into `new/` and fsync the folder —
a reader never sees half a message and a crash never loses an acknowledged
one.  Files are stored with LF line endings, as Postfix and Dovecot do, with
`Return-Path` and `Delivered-To` prepended (RFC 5321 §4.4).  The file name
carries `,S=<size>` like Dovecot's.

Addresses reach the file system only through the directory's account names,
which `StateDir.maildir` checks, so a recipient can not name a path.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .directory import Account, Directory
from .fsutil import write_durable
from .state import StateDir

_counter = itertools.count(1)


@dataclass(frozen=True, slots=True)
class LocalResult:
    ok: bool
    status: str        # enhanced status code
    detail: str
    path: str = ""


def ensure_maildir(root: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)


class Mda:
    def __init__(self, state: StateDir, directory: Directory) -> None:
        self.state = state
        self.directory = directory
        self._hostname = socket.gethostname().replace("/", "\\057").replace(":", "\\072")

    def account_for(self, recipient: str) -> Account | None:
        account = self.directory.resolve(recipient)
        return account if account is not None and account.enabled else None

    def deliver(self, account: Account, recipient: str, sender: str, message: bytes) -> LocalResult:
        """Store one copy for `account`. Blocking: run it in a thread."""
        root = self.state.maildir(account.domain, account.local)
        ensure_maildir(root)
        head = f"Return-Path: <{sender}>\nDelivered-To: {account.address}\n".encode("utf-8", "surrogateescape")
        data = head + message.replace(b"\r\n", b"\n")
        now = time.time()
        unique = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_counter)}.{self._hostname}"
        name = f"{unique},S={len(data)}"
        final = root / "new" / name
        write_durable(final, data, tmp=root / "tmp" / name)
        return LocalResult(True, "2.0.0", "delivered to maildir", str(final))
