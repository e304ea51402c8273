"""One mail folder (an IMAP mailbox): its index in memory and every change to it.

A `Folder` is shared by all sessions of its user; there is one per (user,
mailbox name) while the folder exists.  The Maildir files are the truth about
which messages exist and their flags; `maillab-uidlist` (uidlist.py) is the
truth about UIDs and MODSEQs; the index in memory joins the two:

    _by_uid   uid → Message        _uids   the UIDs in ascending order
    _by_base  Maildir base → uid   _total  sum of sizes (POP3 STAT)
    _log      the last CHANGE_LOG commits: (MODSEQ, UIDs), for `changed_since`

Invariants:
- every change goes: files on disk → uidlist appended (and fsynced, except
  for flag changes: below) → index in memory → event on the bus.  A reader
  (IMAP, POP3, the TUI) never hears of a UID that a restart could take back;
- flag changes (STORE, FETCH's implicit \\Seen) are a rename of the file in
  cur/ plus a uidlist line, neither fsynced at once: as in Dovecot, whose
  fsync_mode=optimized does not fsync flag or index changes either.  A crash
  can cost only the flag changes of the last seconds (the rename is atomic, so
  a file has its old name or its new one, and the scan at load puts the index
  right by the name it finds); never a message, its octets or its UID, which
  are fsynced before anyone hears of them.  `checkpoint()` (IMAP CHECK and
  CLOSE) makes them durable; any later fsynced uidlist append covers their
  records too.  This keeps STORE to a few rename and write calls, cheap
  enough to run on the event loop;
- UIDs ascend in the order messages are first seen and are never reused;
  UIDNEXT and HIGHESTMODSEQ never go down; each commit that changes anything
  takes one new MODSEQ, shared by the messages it changed (RFC 7162 §3.1);
- `refresh()` reconciles with what other programs did (mutt, an outside MDA):
  files new in `new/` are moved to `cur/` with an empty `:2,` info (as IMAP
  servers do), renamed files are flag changes, missing files are expunges;
- all mutation happens under the user's lock (`UserStore.lock`, an RLock), so
  callers may use any thread; reads of a message's bytes take no lock and
  retry once after a refresh if another program renamed the file.

Blocking: everything that touches the disk.  `messages()`, `get()`,
`status()` and the counters only read memory once the folder is loaded (it is
loaded by `UserStore.folder()`), so they are cheap enough for the loop thread;
`refresh()` on an unchanged folder costs two stat() calls.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Protocol, TypeVar

from ..base.events import Event, FlagsChanged, MessagesAdded, MessagesExpunged
from ..base.fsutil import MAY_BLOCK, Steps, finish, fsync_path
from . import maildir
from .errors import MessageGone, NoSuchMailbox
from .flags import DELETED, SEEN, Keywords, letters_for, normalize_flags, split_info
from .message import Changes, FolderStatus, Message, StoreResult
from .uidlist import Record, UidList, add_line, gone_line, rename_line


class FolderOwner(Protocol):
    """What a folder needs of the user's store that holds it (`UserStore`)."""
    lock: threading.RLock                       # every mutation of the user's folders
    keywords: Keywords                          # the user's keyword letters (dovecot-keywords)

    def now(self) -> float: ...
    def next_uidvalidity(self) -> int: ...
    def flags_of(self, letters: str | None) -> frozenset[str]: ...
    def emit(self, kind: type[Event], **fields: Any) -> None: ...

StoreMode = Literal["set", "add", "remove"]
T = TypeVar("T")

CHANGE_LOG = 512        # commits remembered for `changed_since` (catching a session up)

# A directory whose mtime is this much older than our last scan of it can be
# trusted: any later change gives it a different mtime (timestamps are coarse).
_MTIME_SLACK_NS = 100_000_000


@dataclass(slots=True)
class _Arrival:
    """A message file in tmp/, durable, waiting for the lock to be filed; then its outcome."""
    tmp: Path
    rel: str                    # where it goes: "new/<name>" or "cur/<name>"
    key: str                    # its Maildir base name
    size: int
    date: int
    keep_unindexed: bool
    renamed: bool = False       # out of tmp/ (whatever happens next)
    message: Message | None = None
    error: BaseException | None = None
    done: bool = False


class Folder:
    def __init__(self, user: FolderOwner, name: str, path: Path, special_use: str | None) -> None:
        self.user = user
        self.name = name                    # IMAP wire name, normalised
        self.path = path
        self._dir = str(path)
        self.special_use = special_use      # "\\Sent", ... or None
        self.lock = user.lock
        self._arrivals: list[_Arrival] = []             # delivered files waiting to be filed
        self._arrivals_mutex = threading.Lock()
        self._filer: threading.Thread | None = None     # where steps hold the lock across flushes
        self._list = UidList(path)
        self._loaded = False
        self._closed = False
        self._uidvalidity = 0
        self._uidnext = 1
        self._highestmodseq = 1
        self._by_uid: dict[int, Message] = {}
        self._uids: list[int] = []
        self._by_base: dict[str, int] = {}
        self._total = 0
        self._snapshot: tuple[Message, ...] | None = None
        self._recent: set[int] = set()                  # UIDs no session has claimed as \\Recent
        self._marks: tuple[int, int] | None = None     # (new/, cur/) mtimes at the last full scan
        self._scanned_at = 0                            # time.time_ns() when that scan began
        self._flags_unsynced = False                    # flag renames/records since the last fsync
        self._log: deque[tuple[int, tuple[int, ...]]] = deque(maxlen=CHANGE_LOG)   # (MODSEQ, UIDs it touched)
        self._log_floor = 0                             # the log knows every commit after this MODSEQ

    # ---- reading the index (memory only, once loaded) -------------------------------

    @property
    def uidvalidity(self) -> int:
        return self._uidvalidity

    @property
    def uidnext(self) -> int:
        return self._uidnext

    @property
    def highestmodseq(self) -> int:
        return self._highestmodseq

    @property
    def exists(self) -> int:
        """Number of messages (IMAP EXISTS, POP3 STAT count)."""
        return len(self._uids)

    @property
    def total_size(self) -> int:
        """Sum of RFC822.SIZE over all messages (POP3 STAT octets)."""
        return self._total

    @property
    def closed(self) -> bool:
        """True once the mailbox was deleted or renamed; every operation then raises NoSuchMailbox."""
        return self._closed

    @property
    def loaded(self) -> bool:
        """True when its index is in memory: using it now costs no scan of the folder."""
        return self._loaded and not self._closed

    def messages(self) -> tuple[Message, ...]:
        """All messages in UID order (a snapshot; sequence number n is index n-1 for a fresh session)."""
        self._check()
        snap = self._snapshot
        if snap is None:
            with self.lock:
                snap = self._snapshot = tuple(self._by_uid[u] for u in self._uids)
        return snap

    def take_recent(self, upto: int | None = None) -> frozenset[int]:
        """Claim the \\Recent messages up to UID `upto` (RFC 3501 §2.3.2): the first session to ask gets them.

        `upto` is the last UID the session knows of (None: all): it never claims
        a message it has not seen (one that arrived meanwhile is left to the next call,
        so its \\Recent can not end up counted by a session without it).

        A message is recent from the moment the store first sees it (delivery,
        APPEND, COPY/MOVE target, a file found on disk) until one session takes
        it; one still in `new/` at load time counts as recent, which is what
        Maildir's `new/` means.  Kept in memory, and on disk only that way:
        taking them moves their files from `new/` into `cur/`, one rename
        each (no listing of the folder: this runs for every new message a
        selected session hears of, on the event loop), and index records not
        fsynced: after a crash a file may be back in `new/` (recent again,
        which RFC 3501 allows) or in `cur/` while its record says `new/` (the
        scan at load sees the rename; recent again too).  Files other programs drop in are
        found by `refresh()`, not here.
        """
        self._check()
        with self.lock:
            taken = frozenset(u for u in self._recent if upto is None or u <= upto)
            self._recent -= taken
            self._claim(taken)
            return taken

    def _claim(self, uids: Iterable[int]) -> None:
        """Move the files of `uids` still in new/ into cur/ with an empty ":2," info (as IMAP servers do)."""
        lines: list[str] = []
        for uid in uids:
            m = self._by_uid.get(uid)
            if m is None or m.relpath[0] != "n":
                continue
            name = m.relpath[4:]
            rel = "cur/" + (name if ":" in name else name + ":2,")
            try:
                os.rename(f"{self._dir}/{m.relpath}", f"{self._dir}/{rel}")
            except FileNotFoundError:
                continue                    # someone else took it; the next scan sees where
            self._by_uid[uid] = m._replace(relpath=rel)
            lines.append(rename_line(uid, m.modseq, rel))
        if lines:
            self._snapshot = None
            self._persist(lines, sync=False)     # \Recent is session state (RFC 3501 §2.3.2): no fsync

    @property
    def recent(self) -> int:
        """How many messages no session has claimed yet (STATUS RECENT)."""
        return len(self._recent)

    def peek_recent(self, upto: int | None = None) -> frozenset[int]:
        """The \\Recent messages up to UID `upto` no session has claimed, left unclaimed (EXAMINE, RFC 3501 §6.3.2)."""
        self._check()
        with self.lock:
            return frozenset(u for u in self._recent if upto is None or u <= upto)

    def messages_of(self, uids: Iterable[int]) -> list[Message | None]:
        """The index entries of `uids` (None for a UID that is gone), in their order."""
        get = self._by_uid.get
        return [get(u) for u in uids]

    def changed_since(self, modseq: int) -> list[int] | None:
        """The UIDs that commits after `modseq` changed, added or expunged, ascending; None when
        the change log does not reach back that far (look at every message instead)."""
        entries = list(self._log)       # a copy taken at once, whatever thread commits; then the floor,
        if modseq < self._log_floor:    # which _commit raises before the log drops an entry
            return None
        touched: set[int] = set()
        for ms, uids in reversed(entries):
            if ms <= modseq:
                break
            touched.update(uids)
        return sorted(touched)

    def uids(self) -> tuple[int, ...]:
        return tuple(m.uid for m in self.messages())

    def get(self, uid: int) -> Message | None:
        return self._by_uid.get(uid)

    def status(self) -> FolderStatus:
        msgs = self.messages()
        unseen = sum(1 for m in msgs if SEEN not in m.flags)
        deleted = sum(1 for m in msgs if DELETED in m.flags)
        return FolderStatus(len(msgs), self._uidnext, self._uidvalidity, unseen,
                            self._highestmodseq, self._total, deleted)

    # ---- reading messages (no lock) ---------------------------------------------------

    def path_of(self, uid: int) -> Path:
        """The current file of a message; it may be renamed at any moment by flag changes."""
        m = self._by_uid.get(uid)
        if m is None:
            raise MessageGone(f"message UID {uid} is gone")
        return self.path / m.relpath

    def read(self, uid: int, crlf: bool = False) -> bytes:
        """The whole message: stored form (LF), or with `crlf` the wire form IMAP and POP3 send."""
        data = self._with_file(uid, maildir.read_file)
        return maildir.to_crlf(data) if crlf else data

    def read_header(self, uid: int, crlf: bool = False) -> bytes:
        """The header block including its ending blank line; reads only that far."""
        data = self._with_file(uid, maildir.read_header)
        return maildir.to_crlf(data) if crlf else data

    def _file(self, uid: int) -> str:
        """`path_of` as a plain string (pathlib costs more than reading a small file)."""
        m = self._by_uid.get(uid)
        if m is None:
            raise MessageGone(f"message UID {uid} is gone")
        return f"{self._dir}/{m.relpath}"

    def _with_file(self, uid: int, fn: Callable[[str], T]) -> T:
        try:
            return fn(self._file(uid))
        except FileNotFoundError:
            pass                            # renamed by a flag change, or by another program
        with self.lock:                     # no flag change can rename it again while we read
            self.refresh(force=True)
            try:
                return fn(self._file(uid))
            except FileNotFoundError:
                raise MessageGone(f"message UID {uid} is gone") from None

    # ---- loading and reconciling with the disk ---------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise NoSuchMailbox(f"mailbox {self.name} does not exist any more")
        if not self._loaded:
            self._load()

    def _load(self) -> None:
        with self.lock:
            if self._loaded:
                return
            loaded = self._list.load()
            self._by_uid, self._by_base, self._total, self._snapshot = {}, {}, 0, None
            self._recent = set()
            if loaded is None:
                self._uidvalidity = self.user.next_uidvalidity()
                self._uidnext, self._highestmodseq = 1, 1
                self._list.needs_rewrite = True
                records: Iterable[Record] = ()
            else:
                self._uidvalidity, self._uidnext = loaded.uidvalidity, loaded.uidnext
                self._highestmodseq = loaded.highestmodseq
                records = [loaded.records[u] for u in sorted(loaded.records)]
            parse = self.user.flags_of
            by_uid, by_base, total = self._by_uid, self._by_base, 0
            for r in records:
                base, _, info = r.relpath[4:].partition(":")
                by_uid[r.uid] = Message(r.uid, base, parse(info[2:] if info[:2] == "2," else None),
                                        r.modseq, r.size, r.date, r.relpath, {})
                by_base[base] = r.uid
                total += r.size
                if r.relpath[0] == "n":     # "new/...": never looked at by a reader
                    self._recent.add(r.uid)
            self._total = total
            self._uids = list(self._by_uid)
            self._log_floor = self._highestmodseq       # before the log empties (changed_since reads it after)
            self._log.clear()
            (self.path / "tmp").mkdir(exist_ok=True)
            self._marks = None
            self._loaded = True
            try:
                self._scan()
            except BaseException:
                self._loaded = False
                raise

    def refresh(self, force: bool = False) -> Changes:
        """Catch up with changes other programs made on disk; publishes their events.

        Cheap when nothing changed (two stat() calls); otherwise one listing of
        new/ and cur/.  `force` skips the mtime shortcut.
        """
        self._check()
        with self.lock:
            self._check()
            return self._scan(force)

    def scan_due(self) -> bool:
        """Whether `refresh()` would list the folder now (two stat() calls; False: it would do nothing)."""
        if not self.loaded:
            return True
        try:
            marks = (os.stat(self.path / "new").st_mtime_ns, os.stat(self.path / "cur").st_mtime_ns)
        except FileNotFoundError:
            return True
        return not self._unchanged(marks)

    def _unchanged(self, marks: tuple[int, int]) -> bool:
        """The folders' mtimes say nothing changed since the last full scan (and that scan began
        late enough after their last change for a later change to show in them)."""
        return marks == self._marks and self._scanned_at - max(marks) > _MTIME_SLACK_NS

    def _scan(self, force: bool = True) -> Changes:
        new_dir, cur_dir = self.path / "new", self.path / "cur"
        started = time.time_ns()
        try:
            marks = (os.stat(new_dir).st_mtime_ns, os.stat(cur_dir).st_mtime_ns)
        except FileNotFoundError:
            marks = self._missing_dirs()
        if not force and self._unchanged(marks):
            return Changes()
        cur_names = os.listdir(cur_dir)
        new_names = [n for n in os.listdir(new_dir) if n[0] != "."]
        disk = {"cur/" + n for n in cur_names if n[0] != "."}
        if new_names:
            cur_bases = {n.partition(":")[0] for n in cur_names}
            new_s, cur_s = str(new_dir), str(cur_dir)       # plain strings: pathlib is slow in bulk
            for n in new_names:
                if "\n" in n or n.partition(":")[0] in cur_bases:
                    continue                # a duplicate of a message in cur/: leave it be
                target = n if ":" in n else n + ":2,"
                try:
                    os.rename(f"{new_s}/{n}", f"{cur_s}/{target}")
                except FileNotFoundError:
                    continue                # someone else took it; the next scan sees where
                disk.add("cur/" + target)
        self._marks, self._scanned_at = marks, started
        known = {m.relpath for m in self._by_uid.values()}
        if disk == known:
            if self._list.needs_rewrite:
                self._persist([])
            return Changes()
        return self._reconcile(disk - known, known - disk)

    def _missing_dirs(self) -> tuple[int, int]:
        if not self.path.is_dir():
            self._close()
            raise NoSuchMailbox(f"mailbox {self.name} does not exist any more")
        for sub in ("cur", "new", "tmp"):
            (self.path / sub).mkdir(exist_ok=True)
        return (os.stat(self.path / "new").st_mtime_ns, os.stat(self.path / "cur").st_mtime_ns)

    def _reconcile(self, appeared: set[str], vanished: set[str]) -> Changes:
        """Turn the differences between disk and index into UIDs, flag changes and expunges."""
        by_base, by_uid = self._by_base, self._by_uid
        seen_now: dict[str, str] = {}
        for rel in sorted(appeared):
            if "\n" not in rel:
                seen_now.setdefault(rel[4:].partition(":")[0], rel)
        gone: list[int] = []
        moved: list[tuple[Message, frozenset[str]]] = []
        for rel in vanished:
            base = rel[4:].partition(":")[0]
            uid = by_base[base]
            now = seen_now.pop(base, None)
            if now is None:
                gone.append(uid)
            else:
                moved.append((by_uid[uid], self.user.flags_of(split_info(now[4:])[1])))
                seen_now[base] = now        # a known base: not fresh, below
        fresh = [(base, rel) for base, rel in seen_now.items() if base not in by_base]
        if not (gone or fresh or moved):    # only duplicates of known messages changed
            if self._list.needs_rewrite:
                self._persist([])
            return Changes()
        modseq = self._highestmodseq + 1
        lines: list[str] = []
        flag_uids: list[int] = []
        for m, flags in moved:
            rel = seen_now[m.key]
            if flags != m.flags:
                flag_uids.append(m.uid)
                by_uid[m.uid] = m._replace(flags=flags, modseq=modseq, relpath=rel)
            else:
                by_uid[m.uid] = m._replace(relpath=rel)
            lines.append(rename_line(m.uid, by_uid[m.uid].modseq, rel))
        for uid in gone:
            lines.append(gone_line(uid, modseq))
            self._forget(uid)
        if gone:
            gone_set = set(gone)
            self._uids = [u for u in self._uids if u not in gone_set]
        added: list[int] = []
        folder = str(self.path)
        for base, rel in sorted(fresh, key=lambda f: f[0]):
            path = f"{folder}/{rel}"
            try:
                date = int(os.stat(path).st_mtime)
                size = maildir.size_of(path, base)
            except FileNotFoundError:
                continue                    # vanished while we looked: never existed for us
            m = self._remember(base, rel, size, date, modseq)
            lines.append(add_line(self._record(m)))
            added.append(m.uid)
        if flag_uids or gone or added:
            self._commit(modseq, (*flag_uids, *gone, *added))
        self._snapshot = None
        self._persist(lines)
        changes = Changes(tuple(added), tuple(gone), tuple(flag_uids))
        self._announce(changes, modseq)
        return changes

    def _announce(self, changes: Changes, modseq: int) -> None:
        emit = self.user.emit
        if changes.expunged:
            emit(MessagesExpunged, mailbox=self.name, uids=changes.expunged, modseq=modseq)
        if changes.flags:
            emit(FlagsChanged, mailbox=self.name, uids=changes.flags, modseq=modseq)
        if changes.added:
            emit(MessagesAdded, mailbox=self.name, uids=changes.added)

    # ---- the index and the uid list --------------------------------------------------

    def _remember(self, base: str, rel: str, size: int, date: int, modseq: int) -> Message:
        """Give a file the next UID (memory only; the caller persists)."""
        uid = self._uidnext
        self._uidnext += 1
        m = Message(uid, base, self.user.flags_of(split_info(rel[4:])[1]), modseq, size, date, rel, {})
        self._by_uid[uid] = m
        self._by_base[base] = uid
        self._uids.append(uid)
        self._total += size
        self._recent.add(uid)
        return m

    def _forget(self, uid: int) -> None:
        m = self._by_uid.pop(uid)
        self._by_base.pop(m.key, None)
        self._recent.discard(uid)
        self._total -= m.size

    def _commit(self, modseq: int, uids: tuple[int, ...]) -> None:
        """Take `modseq` as the HIGHESTMODSEQ: logged first, so a reader that sees it finds its UIDs."""
        log = self._log
        if len(log) == log.maxlen:
            self._log_floor = log[0][0]
        log.append((modseq, uids))
        self._highestmodseq = modseq

    @staticmethod
    def _record(m: Message) -> Record:
        return Record(m.uid, m.modseq, m.size, m.internaldate, m.relpath)

    def _persist(self, lines: list[str], sync: bool = True) -> None:
        """Make the index durable now: `_persist_steps` with an fsync."""
        finish(self._persist_steps(lines, sync))

    def _persist_steps(self, lines: list[str], sync: bool = True) -> Steps[None]:
        """Durability steps that make the index durable: append `lines` (the index file
        then to be flushed), or rewrite the list when due (durable at once).

        With `sync` False the appended lines are not flushed (records whose loss
        a crash may cost: the scan at load finds the files where they are).

        On failure the index in memory is dropped (reloaded from disk on next
        use) and the error propagates: nobody has been told of the change yet.
        """
        try:
            if self._list.should_compact(len(self._by_uid)):
                self._rewrite()
            elif lines:
                try:
                    self._list.append(lines, sync=False)
                except FileNotFoundError:
                    self._rewrite()
                else:
                    if sync:
                        yield [self._list.path]
        except BaseException:
            self._loaded = False
            self._snapshot = None
            raise

    def _rewrite(self) -> None:
        self._list.rewrite(self._uidvalidity, self._uidnext, self._highestmodseq,
                           (self._record(self._by_uid[u]) for u in self._uids))

    def _close(self) -> None:
        self._closed = True
        self._snapshot = ()

    # ---- changing messages -------------------------------------------------------------

    def append(self, data: bytes, flags: Iterable[str] = (), internaldate: float | None = None) -> Message:
        """Store a message (RFC 3501 §6.3.11): CRLF becomes LF; the file goes to cur/ with its flags.

        Returns the new Message (UIDPLUS: APPENDUID uidvalidity uid).
        """
        wanted = normalize_flags(flags, self.user.keywords)
        letters = letters_for(wanted, self.user.keywords)
        return self._add(maildir.to_lf(data), letters, internaldate, "cur")

    def _add(self, stored: bytes, letters: str | None, internaldate: float | None, sub: str,
             keep_unindexed: bool = False) -> Message:
        """Store one message now (blocking): `add_steps` with an fsync at each step."""
        return finish(self.add_steps(stored, letters, internaldate, sub, keep_unindexed))

    def add_steps(self, stored: bytes, letters: str | None, internaldate: float | None, sub: str,
                  keep_unindexed: bool = False, tag: str = "") -> Steps[Message]:
        """Durability steps (maillab.base.fsutil) that write one message file and index it.

        First step (no lock, nothing visible yet): the tmp/ file, to be made
        durable by the caller.  Then the message joins the arrivals, and after
        one more pass (an empty flush: every delivery made durable by the same
        flush joins too) whoever gets the user's lock first files every
        arrival waiting (`_file_steps`), so concurrent deliveries share one
        folder flush and one index flush.  When the lock is free it is taken
        at once and held across those two flushes (the syncer's thread files
        in place, its flushes shared with everyone's); when another thread
        holds it (an IMAP session, for long maybe) the steps yield `MAY_BLOCK`
        and file in a pool thread, fsyncing there.  If indexing fails the
        file is removed and the error raised — unless `keep_unindexed`
        (delivery: the message is safe, a later refresh indexes it), which
        returns a Message with uid 0 instead.
        """
        self._check()
        date = int(internaldate if internaldate is not None else self.user.now())
        unique = maildir.unique_name()
        size = maildir.crlf_size(stored)
        name = maildir.filename(unique, len(stored), size, letters, tag)
        tmp = maildir.write_tmp(self.path, unique, stored, date)
        arrival = _Arrival(tmp, f"{sub}/{name}", name.partition(":")[0], size, date, keep_unindexed)
        try:
            yield [tmp]
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with self._arrivals_mutex:
            self._arrivals.append(arrival)
        try:
            yield []
        except BaseException:
            with self._arrivals_mutex:
                waiting = any(a is arrival for a in self._arrivals)
                self._arrivals = [a for a in self._arrivals if a is not arrival]
            if waiting:
                tmp.unlink(missing_ok=True)
                raise
            # else it is being filed: its outcome is below
        while not arrival.done:
            if self._filer is threading.current_thread():  # another delivery's steps are filing
                yield []                                    # here, holding the lock: theirs first
            elif self.lock.acquire(blocking=False):
                self._filer = threading.current_thread()
                try:
                    yield from self._file_steps()
                finally:
                    self._filer = None
                    self.lock.release()
            else:
                yield MAY_BLOCK
                with self.lock:
                    if not arrival.done:            # nobody filed it while we waited for the lock
                        finish(self._file_steps())
        if arrival.error is not None:
            raise arrival.error
        assert arrival.message is not None
        return arrival.message

    def _file_steps(self) -> Steps[None]:
        """Durability steps, run under the lock: rename every waiting arrival into place, flush
        the folders, give UIDs (one MODSEQ), append the index and flush it, then `MessagesAdded`:
        no reader ever hears of a UID a crash could take back, and UIDs appear in order."""
        with self._arrivals_mutex:
            batch, self._arrivals = self._arrivals, []
        try:
            self._check()
            moved = []
            for a in batch:
                try:
                    os.rename(a.tmp, self.path / a.rel)
                except OSError as e:
                    a.error = e
                else:
                    a.renamed = True
                    moved.append(a)
            if moved:
                yield [self.path / sub for sub in dict.fromkeys(a.rel.partition("/")[0] for a in moved)]
            modseq = self._highestmodseq + 1
            filed = [(a, self._remember(a.key, a.rel, a.size, a.date, modseq)) for a in moved]
            self._commit(modseq, tuple(m.uid for _, m in filed))
            self._snapshot = None
            try:
                yield from self._persist_steps([add_line(self._record(m)) for _, m in filed])
            except OSError as e:
                for a, m in filed:
                    if a.keep_unindexed:
                        a.message = Message(0, a.key, frozenset(), 0, a.size, a.date, a.rel, {})
                    else:
                        (self.path / a.rel).unlink(missing_ok=True)
                        a.error = e
                return
            for a, m in filed:
                a.message = m
            if filed:
                self.user.emit(MessagesAdded, mailbox=self.name, uids=tuple(m.uid for _, m in filed))
        except BaseException as e:
            for a in batch:
                if a.message is None and a.error is None:
                    a.error = e
            raise
        finally:
            for a in batch:
                if not a.renamed:
                    a.tmp.unlink(missing_ok=True)   # a leftover: nothing may stay in tmp/
                a.done = True

    def store(self, uids: Iterable[int], flags: Iterable[str], mode: StoreMode = "add",
              unchanged_since: int | None = None) -> StoreResult:
        """Set, add or remove flags (RFC 3501 §6.4.6) by renaming each file (atomic).

        `unchanged_since` is CONDSTORE's UNCHANGEDSINCE: messages with a higher
        MODSEQ are left alone and returned in `modified`.  Unknown UIDs are skipped.
        """
        if mode not in ("set", "add", "remove"):
            raise ValueError(f"bad store mode {mode!r}")
        wanted = normalize_flags(flags, self.user.keywords)
        if mode != "remove":
            letters_for(wanted, self.user.keywords)       # allot keyword letters first (KeywordLimit)
        self._check()
        with self.lock:
            self._check()
            modseq = self._highestmodseq + 1
            changed: list[Message] = []
            modified: list[int] = []
            lines: list[str] = []
            vanished = False
            folder = str(self.path)
            for uid in sorted(set(uids)):
                m = self._by_uid.get(uid)
                if m is None:
                    continue
                if unchanged_since is not None and m.modseq > unchanged_since:
                    modified.append(uid)
                    continue
                new = wanted if mode == "set" else m.flags | wanted if mode == "add" else m.flags - wanted
                if new == m.flags:
                    continue
                _base, old_letters = split_info(m.relpath[4:])
                rel = f"cur/{m.key}:2,{letters_for(new, self.user.keywords, keep=old_letters or '')}"
                try:
                    os.rename(f"{folder}/{m.relpath}", f"{folder}/{rel}")
                except FileNotFoundError:
                    vanished = True
                    continue
                n = m._replace(flags=new, modseq=modseq, relpath=rel)
                self._by_uid[uid] = n
                changed.append(n)
                lines.append(rename_line(uid, modseq, rel))
            if changed:
                self._commit(modseq, tuple(m.uid for m in changed))
                self._snapshot = None
                self._persist(lines, sync=False)       # flags: see the module docstring
                self._flags_unsynced = True
                self.user.emit(FlagsChanged, mailbox=self.name, uids=tuple(m.uid for m in changed),
                               modseq=modseq)
            if vanished:
                self._scan()
            return StoreResult(tuple(changed), tuple(modified), modseq if changed else 0)

    def checkpoint(self) -> None:
        """Make the flag changes made so far durable (RFC 3501 §6.4.1 CHECK): fsync cur/ and the uidlist."""
        self._check()
        with self.lock:
            if self._flags_unsynced:
                fsync_path(self.path / "cur")
                fsync_path(self._list.path)
                self._flags_unsynced = False

    def expunge(self, uids: Iterable[int] | None = None) -> tuple[int, ...]:
        """Remove the messages flagged \\Deleted (only among `uids` if given: UID EXPUNGE, RFC 4315)."""
        self._check()
        with self.lock:
            self._check()
            allowed = None if uids is None else set(uids)
            doomed = [u for u in self._uids if DELETED in self._by_uid[u].flags
                      and (allowed is None or u in allowed)]
            return self._remove(doomed)

    def remove(self, uids: Iterable[int]) -> tuple[int, ...]:
        """Remove messages whatever their flags (POP3 DELE at QUIT); returns the UIDs removed."""
        self._check()
        with self.lock:
            self._check()
            return self._remove(sorted(u for u in set(uids) if u in self._by_uid))

    def _remove(self, doomed: list[int]) -> tuple[int, ...]:
        if not doomed:
            return ()
        subs = set()
        folder = str(self.path)
        for uid in doomed:
            rel = self._by_uid[uid].relpath
            subs.add(rel[:3])
            try:
                os.unlink(f"{folder}/{rel}")
            except FileNotFoundError:
                pass                        # gone already: the same outcome
        for sub in subs:
            fsync_path(self.path / sub)
        self._drop(doomed)
        return tuple(doomed)

    def _drop(self, doomed: list[int]) -> None:
        """Index side of removing messages whose files are gone: persist, then announce."""
        modseq = self._highestmodseq + 1
        for uid in doomed:
            self._forget(uid)
        gone = set(doomed)
        self._uids = [u for u in self._uids if u not in gone]
        self._commit(modseq, tuple(doomed))
        self._snapshot = None
        self._persist([gone_line(uid, modseq) for uid in doomed])
        self.user.emit(MessagesExpunged, mailbox=self.name, uids=tuple(doomed), modseq=modseq)

    def copy(self, uids: Iterable[int], dest: "Folder") -> list[tuple[int, int]]:
        """COPY (RFC 3501 §6.4.7): hard links (or copies) into dest's cur/, flags and date kept.

        Returns (source UID, new UID) pairs in source order (UIDPLUS COPYUID).
        """
        return self._transfer(uids, dest, move=False)

    def move(self, uids: Iterable[int], dest: "Folder") -> list[tuple[int, int]]:
        """MOVE (RFC 6851): rename the files into dest, then expunge them here."""
        return self._transfer(uids, dest, move=True)

    def _transfer(self, uids: Iterable[int], dest: "Folder", move: bool) -> list[tuple[int, int]]:
        if dest.user is not self.user:
            raise ValueError("messages can only be copied between folders of one user")
        self._check()
        dest._check()
        with self.lock:
            self._check()
            dest._check()
            placed: list[tuple[Message, str]] = []
            for uid in sorted(set(uids)):
                m = self._by_uid.get(uid)
                if m is None:
                    continue
                name = self._transfer_one(m, dest, move)
                if name is not None:
                    placed.append((m, name))
            if not placed:
                return []
            fsync_path(dest.path / "cur")
            modseq = dest._highestmodseq + 1
            pairs: list[tuple[int, int]] = []
            lines: list[str] = []
            for m, name in placed:
                n = dest._remember(name.partition(":")[0], "cur/" + name, m.size, m.internaldate, modseq)
                pairs.append((m.uid, n.uid))
                lines.append(add_line(dest._record(n)))
            dest._commit(modseq, tuple(n for _, n in pairs))
            dest._snapshot = None
            dest._persist(lines)
            dest.user.emit(MessagesAdded, mailbox=dest.name, uids=tuple(n for _, n in pairs))
            if move:
                for sub in {m.relpath[:3] for m, _ in placed}:
                    fsync_path(self.path / sub)
                self._drop([m.uid for m, _ in placed])
            return pairs

    def _transfer_one(self, m: Message, dest: "Folder", move: bool) -> str | None:
        """Put one message's file into dest/cur under a new base; None if it vanished."""
        src = self.path / m.relpath
        stored, _w = maildir.sizes_in_name(m.key)
        unique = maildir.unique_name()
        letters = split_info(m.relpath[4:])[1] or ""
        try:
            if stored is None:
                stored = os.stat(src).st_size
            name = maildir.filename(unique, stored, m.size, letters)
            target = dest.path / "cur" / name
            if move:
                os.rename(src, target)
            else:
                try:
                    os.link(src, target)
                except FileNotFoundError:
                    raise
                except OSError:             # another file system, or no hard links here
                    tmp = maildir.write_tmp(dest.path, unique, src.read_bytes(), m.internaldate)
                    fsync_path(tmp)
                    os.rename(tmp, target)
        except FileNotFoundError:
            return None
        return name
