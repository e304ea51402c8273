"""Hops a host took from the lab's other hosts, by their queue IDs: a hop replayed is not queued twice.

A hop from host A to host B can be lost between B's 250 and A's record of it
(A killed, or stopped before it could record); A then sends the message again
after its restart, as every at-least-once MTA does.  Inside the lab B knows
better: the top Received header of what it receives is the one A stamped, with
A's queue ID (`upstream_id`), and the client address is A's.  B keeps, for each
(client address, A's queue ID), the recipients it queued, in the journal
`<spool>/inbound` (JSON lines) and in the envelope of its copy while it is
queued (`Entry.extra["upstream"]`); a replay finds them there and is answered 250
with B's queue ID without being queued again (`QueueManager.accept`).

The envelope is made durable with the copy; the line is written only once the
copy is durable, before the 250 and before B delivers it: a key never stands for
a message B does not have.  The line is written, not fsynced: it survives a
kill -9; after a power cut a replay of a hop B delivered since may be queued
twice again, never lost.  The last `KEEP`
hops are remembered (a replay comes right after a restart); the journal is
rewritten to them when it grows twice as long.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO

from ..base.fsutil import write_all, write_durable
from .records import Entry

KEEP = 10_000
HEAD = 2048              # octets of a message searched for the stamp
# "Received: from helo (name [ip])\r\n\tby host (maillab) with ESMTP id QID" or, on a bounce,
# "Received: by host (maillab) id QID;"
_STAMP = re.compile(rb"\AReceived: (?:from [^\r\n]*\r?\n[ \t]+)?(?:\(Authenticated sender: [^\r\n]*\r?\n[ \t]+)?"
                    rb"by (\S+) \(maillab\)[^\r\n]*? id ([0-9A-Z]+)")


def upstream_id(client_ip: str, client_host: str, content: bytes, body: BinaryIO | None = None) -> str:
    """The key of a hop from the lab's host `client_host` at `client_ip` ("<address> <its
    queue ID>"), read from the Received header it stamped on top of `content` (or of `body`,
    a message spilled to a file, whose first bytes are read); "" if there is none
    (`client_host` "": the client is no host of the lab)."""
    if not client_host:
        return ""
    head = content[:HEAD] if body is None else os.pread(body.fileno(), HEAD, 0)
    m = _STAMP.match(head)
    if m is None or m[1].decode("ascii", "replace").lower() != client_host.lower():
        return ""
    return f"{client_ip} {m[2].decode()}"


class InboundLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._hops: OrderedDict[str, tuple[str, set[str]]] = OrderedDict()   # key -> (our id, rcpts)
        self._fd = -1
        self._lines = 0          # in the journal file

    def load(self, queued: list[Entry]) -> None:
        """Read what earlier runs took (blocking), with the hops still `queued` (their key is in
        their envelope: a kill can fall between a copy made durable and its line here); rewrite
        the journal when it is long."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            lines = []
        for raw in lines:
            try:
                item = json.loads(raw)
                self._remember(item["k"], item["q"], item["r"])
            except (ValueError, KeyError, TypeError):
                continue                 # a torn last line after a crash
        for entry in queued:
            if entry.extra.get("upstream"):
                self._remember(entry.extra["upstream"], entry.id, list(entry.recipients))
        self._lines = len(lines)
        if self._lines > 2 * KEEP:
            self._compact()
        else:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def taken(self, key: str) -> tuple[str, set[str]]:
        """(our queue ID, the recipients, lower case) queued for the hop `key` already."""
        return self._hops.get(key, ("", set()))

    def record(self, key: str, qid: str, recipients: list[str]) -> None:
        """After the copy is durable, before its 250: the hop `key` is queued as `qid`."""
        self._remember(key, qid, recipients)
        if self._fd < 0:
            return
        write_all(self._fd, self._line(key, qid, recipients))
        self._lines += 1
        if self._lines > 2 * KEEP:
            self._compact()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _compact(self) -> None:
        """Rewrite the journal to the hops remembered (temp file, rename): once per KEEP hops,
        about 1 MB written."""
        self.close()
        write_durable(self.path, b"".join(self._line(k, q, r) for k, (q, r) in self._hops.items()),
                      tmp=self.path.with_name(".inbound.tmp"))
        self._lines = len(self._hops)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)

    def _remember(self, key: str, qid: str, recipients: list[str] | set[str]) -> None:
        _old, rcpts = self._hops.pop(key, ("", set()))
        self._hops[key] = (qid, rcpts | {r.lower() for r in recipients})
        if len(self._hops) > KEEP:
            self._hops.popitem(last=False)

    @staticmethod
    def _line(key: str, qid: str, recipients: list[str] | set[str]) -> bytes:
        return json.dumps({"k": key, "q": qid, "r": sorted(recipients)}, separators=(",", ":")).encode() + b"\n"
