"""The spool of one MTA host: message files plus an append-only queue journal.

Layout of `<state>/spool/<host>/`:

    <ID>.msg    line 1: the envelope as JSON; then the message, CRLF, as accepted
    journal     JSON lines: every change to a queue record since the last compaction
    .<ID>.tmp   a message being accepted
    .body-<random>.tmp  a message body being received (maillab.smtp.bodysink)
    .spare-N.tmp  a removed message's file, kept to be overwritten by the next one

Invariants:
- a `.msg` file appears only whole (temp name, flush, rename, folder flush):
  when the steps of `accept()` end, the 250 may be sent;
- a recipient is recorded final ("sent"/"bounced") only after its delivery or
  its bounce is itself durable; that record is fsynced when other recipients
  remain, and otherwise the `.msg` file is removed — so a crash anywhere means
  delivery at least once; a message caught between its delivery and its
  removal is not delivered twice: its local copies are found by their tag
  (queue/redelivery.py), a hop by the next host of the lab (queue/inbound.py);
- deferral records are not fsynced: losing one only brings a retry forward;
- `load()` rebuilds every entry from the journal and the `.msg` files, and
  rewrites the journal compacted (temp file, rename).

Spare files: a removed `.msg` is renamed to a spare (up to SPARES of them)
and, once that rename is durable, the next message is written over it instead
of into a new file.  Creating and deleting an inode per message is what file
systems do worst: on this project's box (ext4 without a journal) a file
creation costs 0.3-0.8 ms for a minute after many deletions, against 0.03 ms
otherwise.  Spares are `.tmp` files, so a restart deletes them.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import time
from pathlib import Path
from typing import BinaryIO

from ..base.fsutil import Steps, append_file, fsync_path, overwrite, write_all, write_durable, write_new
from .records import PENDING, Attempt, Entry, Recipient

_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"
SPARES = 64                 # removed message files kept for reuse


def new_queue_id(now: float | None = None) -> str:
    """A Postfix-like queue id: time-ordered, 12 characters, unique in practice.

    Seven digits of microseconds since the epoch, then five random ones.
    """
    return _digits(int((now if now is not None else time.time()) * 1_000_000), 7) + \
        _digits(secrets.randbits(32), 5)       # one getrandom(2) for the five


def _digits(n: int, count: int) -> str:
    out = []
    for _ in range(count):
        n, digit = divmod(n, len(_ALPHABET))
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _envelope(entry: Entry) -> dict:
    return {"id": entry.id, "sender": entry.sender, "recipients": list(entry.recipients),
            "arrival": entry.arrival, "size": entry.size, "client": entry.client, "extra": entry.extra}


def _entry_from(env: dict) -> Entry:
    entry = Entry(env["id"], env["sender"], env["arrival"], env["size"], env.get("client", ""),
                  env.get("extra", {}))
    entry.recipients = {r: Recipient(r) for r in env["recipients"]}
    return entry


def _history(entry: Entry) -> dict:
    return {"q": entry.id, "h": [a.to_json() for a in entry.history]}


def _parse_lines(lines: list[bytes]) -> list[dict]:
    """Journal lines as objects: one C-speed parse of them all, line by line only if that
    fails (a torn last line after a crash, which is then skipped)."""
    try:
        items = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        items = []
        for raw in lines:
            try:
                items.append(json.loads(raw))
            except ValueError:
                continue
    return [x for x in items if isinstance(x, dict) and "q" in x]


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._journal_path = folder / "journal"
        self._journal = os.open(self._journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._journaled: set[str] = set()    # ids whose envelope is in the journal
        self._spares: list[Path] = []         # durably renamed away: free to overwrite
        self._spare_numbers = itertools.count()

    def close(self) -> None:
        os.close(self._journal)

    def _msg(self, qid: str) -> Path:
        return self.folder / f"{qid}.msg"

    # --- writes (blocking: call them in a thread) -----------------------------
    def accept(self, entry: Entry, message: bytes, body: BinaryIO | None = None) -> Steps[None]:
        """Durability steps (maillab.base.fsutil) that store a new message: when they end, the 250 may go out.

        The `.msg` file is written under a temp name (over a spare file when
        there is one), made durable, renamed into place, and the rename made
        durable; on any failure nothing is left.  `body`: a file whose whole
        content follows `message` (a body spilled while it was read), copied
        by the kernel, never read into memory.
        """
        head = json.dumps(_envelope(entry), separators=(",", ":")).encode()
        final, pieces = self._msg(entry.id), [head, b"\n", message]
        spare = self._spares.pop() if self._spares and body is None else None
        if spare is None:
            tmp = self.folder / f".{entry.id}.tmp"
            write_new(tmp, pieces)                  # removes its partial file on failure
            if body is not None:
                try:
                    append_file(tmp, body)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
        else:
            tmp = spare
            try:
                overwrite(tmp, pieces)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        try:
            yield [tmp]
            os.rename(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        try:
            yield [self.folder]
        except BaseException:
            final.unlink(missing_ok=True)      # not known durable: the client gets no 250
            raise

    def record(self, entry: Entry, recipients: list[Recipient], durable: bool = False,
               **flags: bool) -> None:
        """Journal the current state of `recipients` (and message flags: held, warned)."""
        lines = []
        if entry.id not in self._journaled:
            lines.append({"q": entry.id, "env": _envelope(entry)})
            self._journaled.add(entry.id)
        for r in recipients:
            lines.append({"q": entry.id, "r": r.address, "s": r.status, "a": r.attempts,
                          "n": r.next_attempt, "l": r.last_attempt, "x": r.last_result})
        if recipients and entry.history:     # after an attempt: the tries so far (bounded), the last wins
            lines.append(_history(entry))
        for name, value in flags.items():
            lines.append({"q": entry.id, name: value})
        self._append(lines, durable)

    def remove(self, qid: str) -> Steps[None]:
        """Durability steps that forget a message: its file goes, durably when the disk allows.

        If that flush fails the removal may not survive a crash, and the
        message would be delivered again after a restart: twice, never lost.
        """
        msg = self._msg(qid)
        spare = self.folder / f".spare-{next(self._spare_numbers)}.tmp" if len(self._spares) < SPARES else None
        try:
            if spare is not None:
                os.rename(msg, spare)
            else:
                msg.unlink()
        except FileNotFoundError:
            spare = None
        try:
            yield [self.folder]
        except OSError:
            if spare is not None:
                spare.unlink(missing_ok=True)     # its rename may not last: never overwrite it
        else:
            if spare is not None:
                self._spares.append(spare)
        if qid in self._journaled:
            self._journaled.discard(qid)
            self._append([{"q": qid, "gone": True}], durable=False)

    def _append(self, lines: list[dict], durable: bool) -> None:
        write_all(self._journal, b"".join(json.dumps(x, separators=(",", ":")).encode() + b"\n"
                                          for x in lines))
        if durable:
            os.fsync(self._journal)

    # --- reads ---------------------------------------------------------------
    def read_message(self, qid: str) -> bytes:
        with open(self._msg(qid), "rb") as f:
            f.readline()
            return f.read()

    def load(self, compact: bool = True) -> list[Entry]:
        """Every queued message, oldest first; compacts the journal and clears leftovers
        (with `compact=False`, only reads: for `maillab queue` on a stopped lab)."""
        state: dict[str, Entry] = {}
        try:
            data = self._journal_path.read_bytes()
        except FileNotFoundError:
            data = b""
        raw_lines = data.splitlines()
        for item in _parse_lines(raw_lines):
            qid = item.get("q")
            if "env" in item:
                state[qid] = _entry_from(item["env"])
                continue
            entry = state.get(qid)
            if entry is None:
                continue
            if item.get("gone"):
                del state[qid]
            elif "r" in item and item["r"] in entry.recipients:
                entry.recipients[item["r"]] = Recipient(item["r"], item["s"], item["a"], item["n"],
                                                        item["l"], item["x"])
            elif "h" in item:
                entry.history = [Attempt.from_json(a) for a in item["h"]]
            elif "held" in item:
                entry.held = bool(item["held"])
            elif "warned" in item:
                entry.warned = bool(item["warned"])
        entries = []
        for dirent in os.scandir(self.folder):
            name = dirent.name
            if name.endswith(".tmp"):
                if compact:
                    os.unlink(dirent.path)     # never acknowledged: its client got no 250
            elif name.endswith(".msg"):
                entry = state.get(name[:-4])
                if entry is None:
                    try:
                        with open(dirent.path, "rb") as f:
                            entry = _entry_from(json.loads(f.readline()))
                    except FileNotFoundError:
                        continue           # removed since the listing: delivered meanwhile
                if entry.pending:
                    entries.append(entry)
                elif compact:              # all final, crashed before removal
                    os.unlink(dirent.path)
        entries.sort(key=lambda e: (e.arrival, e.id))
        self._journaled = {e.id for e in entries if e.id in state}
        if compact and len(raw_lines) > 2 * sum(1 + len(e.recipients) for e in entries) + 1000:
            self._compact(entries)     # only when most of the journal is history
        return entries

    def _compact(self, entries: list[Entry]) -> None:
        lines = []
        for entry in entries:
            if entry.id not in self._journaled:
                continue
            lines.append({"q": entry.id, "env": _envelope(entry)})
            for r in entry.recipients.values():
                if r.status != PENDING or r.attempts:
                    lines.append({"q": entry.id, "r": r.address, "s": r.status, "a": r.attempts,
                                  "n": r.next_attempt, "l": r.last_attempt, "x": r.last_result})
            if entry.history:
                lines.append(_history(entry))
            if entry.held:
                lines.append({"q": entry.id, "held": True})
            if entry.warned:
                lines.append({"q": entry.id, "warned": True})
        data = b"".join(json.dumps(x, separators=(",", ":")).encode() + b"\n" for x in lines)
        os.close(self._journal)
        write_durable(self._journal_path, data, tmp=self.folder / ".journal.tmp")
        self._journal = os.open(self._journal_path, os.O_WRONLY | os.O_APPEND, 0o600)
        fsync_path(self.folder)
