"""The spool of one MTA host: accepted messages on disk until every recipient is done.

Layout of `<state>/spool/<host>/`:

    <ID>.msg    line 1: the envelope as JSON; then the message, CRLF, as accepted
    <ID>.done   append-only: one JSON line per recipient that reached a final state

Invariants: a `.msg` file appears only whole (written to a temp name, fsynced,
renamed, folder fsynced) — so when `accept()` returns, a 250 may be sent.
A recipient is marked done (appended and fsynced) only after its delivery
or bounce is itself durable, so a crash at any point leads to delivery at
least once; `remove()` happens when all recipients are done.  On start,
`pending()` lists what to replay.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..fsutil import write_all, write_durable

_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"


def new_queue_id(now: float | None = None) -> str:
    """A Postfix-like queue id: time-ordered, 12 characters, unique in practice."""
    micros = int((now if now is not None else time.time()) * 1_000_000)
    out = []
    for _ in range(7):
        micros, digit = divmod(micros, len(_ALPHABET))
        out.append(_ALPHABET[digit])
    return "".join(reversed(out)) + "".join(secrets.choice(_ALPHABET) for _ in range(5))


@dataclass
class SpooledMessage:
    id: str
    sender: str
    recipients: tuple[str, ...]
    arrival: float
    size: int
    client: str = ""                       # "name[ip]" of the client that handed it over
    extra: dict = field(default_factory=dict)
    done: set[str] = field(default_factory=set)

    @property
    def pending(self) -> list[str]:
        return [r for r in self.recipients if r not in self.done]


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _msg(self, qid: str) -> Path:
        return self.folder / f"{qid}.msg"

    def _done(self, qid: str) -> Path:
        return self.folder / f"{qid}.done"

    def accept(self, msg: SpooledMessage, message: bytes) -> None:
        """Write the message durably. Blocking: run it in a thread."""
        head = json.dumps({"id": msg.id, "sender": msg.sender, "recipients": list(msg.recipients),
                           "arrival": msg.arrival, "size": msg.size, "client": msg.client,
                           "extra": msg.extra}, separators=(",", ":")).encode()
        write_durable(self._msg(msg.id), head + b"\n" + message, tmp=self.folder / f".{msg.id}.tmp")

    def mark_done(self, qid: str, recipient: str, outcome: str) -> None:
        """Record that `recipient` reached a final state. Blocking."""
        line = json.dumps({"rcpt": recipient, "outcome": outcome}).encode() + b"\n"
        fd = os.open(self._done(qid), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, qid: str) -> None:
        for path in (self._msg(qid), self._done(qid)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def load(self, qid: str) -> tuple[SpooledMessage, bytes]:
        data = self._msg(qid).read_bytes()
        head, _, message = data.partition(b"\n")
        env = json.loads(head)
        msg = SpooledMessage(env["id"], env["sender"], tuple(env["recipients"]), env["arrival"],
                             env["size"], env.get("client", ""), env.get("extra", {}))
        try:
            for line in self._done(qid).read_bytes().splitlines():
                try:
                    msg.done.add(json.loads(line)["rcpt"])
                except (ValueError, KeyError):
                    continue  # a torn last line after a crash: that recipient is redone
        except FileNotFoundError:
            pass
        return msg, message

    def pending(self) -> list[str]:
        """Queue ids on disk, oldest first; leftover temp files are removed."""
        ids = []
        for entry in os.scandir(self.folder):
            if entry.name.endswith(".tmp"):
                os.unlink(entry.path)   # never acknowledged: the client got no 250
            elif entry.name.endswith(".msg"):
                ids.append(entry.name[:-4])
        return sorted(ids)
