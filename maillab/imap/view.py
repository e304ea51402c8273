"""The selected mailbox as one session sees it: sequence numbers, \\Recent, and catching up.

IMAP sequence numbers belong to a session (RFC 3501 §2.3.1.2): they change
only when the server *tells* the client (EXISTS, EXPUNGE).  A `View` keeps
the session's list of UIDs, so sequence number n is `uids[n - 1]`, and
brings it up to date with the shared `Folder` in `sync()`:

- nothing to do when the folder's HIGHESTMODSEQ is the one last seen (O(1));
- else a look at the UIDs the folder's change log names since then (all the
  view's UIDs if the log does not reach back so far): a UID the folder no longer has is expunged
  (a *ghost* until reported), one whose MODSEQ is above the last seen was
  changed by someone — unless the MODSEQ is one of this session's own
  commits (`own`), which the session already reported or was asked to keep
  silent about;
- UIDs above the last known one are new messages (EXISTS, RECENT).

Rules (RFC 3501 §7.4.1, §5.5): EXPUNGE responses are sent only when the
command allows it (never during FETCH, STORE or SEARCH by sequence number);
until then a ghost keeps its sequence number and FETCH skips it.  Sequence
sets resolve to index ranges by bisection, so `1:4294967295` never expands
beyond the messages that exist.

The store's events only *wake* an idling session; the MODSEQ pass is what
decides what to report, so no event can be missed or reported twice.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Iterable

from ..store import Folder, Message
from .fetch import flags_text
from .parser import SeqSet
from .search import ranges_of


NEW_SCAN = 1000        # up to this many new UIDs are looked up one by one in sync()


class SequenceError(Exception):
    """A message sequence number that does not exist (BAD, RFC 3501 §9 seq-number)."""


class MailboxGone(Exception):
    """The selected mailbox was deleted or renamed under this session."""


class View:
    def __init__(self, folder: Folder, readonly: bool) -> None:
        self.folder = folder
        self.readonly = readonly
        self.synced = folder.highestmodseq          # read before the snapshot: never miss a change
        self.uids: list[int] = [m.uid for m in folder.messages()]
        self.own: set[int] = set()                  # MODSEQs of this session's own commits
        self.ghosts: set[int] = set()               # expunged, not yet reported
        self.recent: set[int] = set()               # always a subset of uids
        self._claim_recent()

    def _claim_recent(self) -> None:
        """\\Recent for the messages of the view only: one that arrived after the view's last
        UID is claimed when the view has it, else RECENT could exceed EXISTS for good."""
        last = self.uids[-1] if self.uids else 0
        folder = self.folder
        self.recent |= folder.peek_recent(last) if self.readonly else folder.take_recent(last)

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def recent_count(self) -> int:
        if not self.ghosts:
            return len(self.recent)
        return sum(1 for u in self.recent if u not in self.ghosts)

    def is_recent(self, uid: int) -> bool:
        return uid in self.recent

    def seq_of(self, uid: int) -> int | None:
        i = self._index(uid)
        return None if i is None else i + 1

    def _index(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i if i < len(self.uids) and self.uids[i] == uid else None

    # ---- sequence sets -------------------------------------------------------------------

    def resolve(self, seqset: SeqSet, uid: bool, strict: bool = True) -> list[tuple[int, int]]:
        """(seq, uid) pairs of a sequence set, ascending, without duplicates.

        UID sets match what exists (RFC 3501 §6.4.8: "n:*" always includes the
        last message).  Sequence sets are clamped to the mailbox; with
        `strict`, a set none of whose ranges starts inside it is a SequenceError.
        """
        uids = self.uids
        out: list[tuple[int, int]] = []
        if uid:
            if not uids:
                return out
            for lo, hi in ranges_of(seqset, uids[-1]):
                i, j = bisect_left(uids, lo), bisect_right(uids, hi)
                out.extend((k + 1, uids[k]) for k in range(i, j))
            return out
        n = len(uids)
        if strict and n == 0:
            raise SequenceError("No messages in the mailbox (use UID commands, or wait for EXISTS)")
        spans = ranges_of(seqset, n)
        if strict and all(lo > n for lo, _ in spans):
            raise SequenceError(f"Message sequence number {spans[0][0]} does not exist "
                                f"(the mailbox has {n} message{'s' if n != 1 else ''})")
        for lo, hi in spans:
            for k in range(max(lo, 1) - 1, min(hi, n)):
                out.append((k + 1, uids[k]))
        return out

    def count(self, seqset: SeqSet, uid: bool) -> int:
        """How many messages `resolve` would name, without listing them."""
        uids = self.uids
        if not uids:
            return 0
        if uid:
            return sum(bisect_right(uids, hi) - bisect_left(uids, lo) for lo, hi in ranges_of(seqset, uids[-1]))
        n = len(uids)
        return sum(max(0, min(hi, n) - max(lo, 1) + 1) for lo, hi in ranges_of(seqset, n))

    # ---- catching up ---------------------------------------------------------------------

    def sync(self, allow_expunge: bool, modseq: bool = False) -> list[str]:
        """Untagged responses that bring the client up to date (see the module docstring)."""
        folder = self.folder
        if folder.closed:
            raise MailboxGone(folder.name)
        lines: list[str] = []
        highest = folder.highestmodseq
        new: list[int] = []
        if highest != self.synced:
            synced, own, get = self.synced, self.own, folder.get
            touched = folder.changed_since(synced)
            if touched is None:                 # older than the folder's change log: every message
                pairs: Iterable[tuple[int, int]] = enumerate(self.uids)
            else:
                pairs = ((i, u) for u in touched if (i := self._index(u)) is not None)
            for i, uid in pairs:
                m = get(uid)
                if m is None:
                    self.ghosts.add(uid)
                elif m.modseq > synced and m.modseq not in own:
                    lines.append(self.flags_line(i + 1, m, modseq))
            last = self.uids[-1] if self.uids else 0
            if folder.uidnext - 1 - last > NEW_SCAN:
                msgs = folder.messages()
                k = bisect_right(msgs, last, key=_uid_of)
                new = [m.uid for m in msgs[k:]]
            else:                           # a few new UIDs: look them up, no snapshot of the folder
                new = [u for u in range(last + 1, folder.uidnext) if get(u) is not None]
            self.synced = highest
            self.own = {x for x in own if x > highest}
        if allow_expunge and self.ghosts:
            ghosts = self.ghosts
            for i in range(len(self.uids) - 1, -1, -1):
                if self.uids[i] in ghosts:
                    lines.append(f"* {i + 1} EXPUNGE")
            self.uids = [u for u in self.uids if u not in ghosts]
            self.recent -= ghosts
            self.ghosts = set()
        if new:
            self.uids.extend(new)
            self._claim_recent()
            lines.append(f"* {len(self.uids)} EXISTS")
            lines.append(f"* {self.recent_count} RECENT")
        return lines

    def flags_line(self, seq: int, m: Message, modseq: bool) -> str:
        extra = f" MODSEQ ({m.modseq})" if modseq else ""
        return f"* {seq} FETCH (UID {m.uid} FLAGS {flags_text(m.flags, m.uid in self.recent)}{extra})"


def _uid_of(m: Message) -> int:
    return m.uid
