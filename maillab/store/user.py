"""One user's mail: the Maildir root, its Maildir++ folders, subscriptions, keywords.

    <state>/mail/<domain>/<local>/          INBOX: cur/ new/ tmp/ maillab-uidlist
        maillab-keywords                    keyword ↔ letter table (flags.py)
        maillab-uidvalidity                 the last UIDVALIDITY handed out
        subscriptions                       subscribed names, one per line
        .Sent/ .Drafts/ .Trash/ .Junk/      special-use folders, made on first open
        .Lists.Python/                      the mailbox "Lists.Python" (delimiter ".")
            cur/ new/ tmp/ maildirfolder maillab-uidlist

A `UserStore` owns the folder tree: it hands out one `Folder` per existing
mailbox and creates, deletes and renames them.  Names are checked by
`names.check_name` before they touch the disk.

Invariants:
- one lock (`lock`, an RLock) serialises every change to this user's mail, so
  operations on two folders (COPY, MOVE, RENAME) can not deadlock;
- a folder appears whole: it is built under a `..new-*` name (not a valid
  mailbox) and renamed into place; a deleted one is first renamed to
  `..trash-*`, then removed (leftovers are cleaned at the next open);
- UIDVALIDITY values of a user only grow (`maillab-uidvalidity`), so a
  re-created or renamed mailbox never shows an old value (RFC 3501 §2.3.1.1);
- a `Folder` object whose mailbox is deleted or renamed is closed for good.

All methods block on the file system; `emit` may be called from any thread.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from ..base.events import Event, MailboxCreated, MailboxDeleted, MailboxRenamed
from ..base.fsutil import fsync_path, write_durable
from .errors import MailboxExists, MailboxNameError, MailboxNotAllowed, NoSuchMailbox
from .flags import Keywords, flags_from_letters
from .folder import Folder
from .message import FolderStatus, MailboxInfo
from .names import DELIMITER, INBOX, check_name, folder_dirname, name_from_dirname, parent_names
from .uidlist import UidList


class UserOwner(Protocol):
    """What a user's store needs of the mail store that holds it (`MailStore`): its clock and
    its way to the event bus."""

    def now(self) -> float: ...
    def publish(self, event: Event) -> None: ...


SPECIAL_USE: dict[str, str] = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk"}


def _is_folder_dir(path: Path) -> bool:
    return not path.is_symlink() and (path / "cur").is_dir()


class UserStore:
    def __init__(self, store: UserOwner, address: str, root: Path) -> None:
        self.store = store
        self.address = address
        self.root = root
        self.lock = threading.RLock()
        self._folders: dict[str, Folder] = {}
        self._flag_memo: dict[str | None, frozenset[str]] = {}
        self._memo_version = -1
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.keywords = Keywords(root)
        self._subscriptions = self._load_subscriptions()
        self._cleanup()
        for name in SPECIAL_USE:
            if not _is_folder_dir(root / folder_dirname(name)):
                self._make_folder(name)
                self.subscribe(name)
        if INBOX not in self._subscriptions:
            self.subscribe(INBOX)

    # ---- helpers for folders ----------------------------------------------------------

    def now(self) -> float:
        return self.store.now()

    def emit(self, kind: type[Event], **fields: Any) -> None:
        self.store.publish(kind(time=self.store.now(), user=self.address, **fields))

    def flags_of(self, letters: str | None) -> frozenset[str]:
        """The IMAP flags of a Maildir info string (memoised: there are few distinct ones)."""
        if self._memo_version != self.keywords.version:
            self._flag_memo.clear()         # a new keyword gives an unknown letter a meaning
            self._memo_version = self.keywords.version
        flags = self._flag_memo.get(letters)
        if flags is None:
            if len(self._flag_memo) > 4096:
                self._flag_memo.clear()
            flags = self._flag_memo[letters] = flags_from_letters(letters, self.keywords)
        return flags

    def next_uidvalidity(self) -> int:
        """A UIDVALIDITY above every one this user had: max(now, last + 1)."""
        with self.lock:
            path = self.root / "maillab-uidvalidity"
            try:
                last = int(path.read_text().strip() or 0)
            except (FileNotFoundError, ValueError):
                last = 0
            value = max(int(time.time()), last + 1) % 2 ** 32 or 1
            write_durable(path, f"{value}\n".encode())
            return value

    def _path(self, name: str) -> Path:
        dirname = folder_dirname(name)
        return self.root if dirname is None else self.root / dirname

    def _cleanup(self) -> None:
        for entry in os.scandir(self.root):
            if entry.name.startswith(("..trash-", "..new-")):
                shutil.rmtree(entry.path, ignore_errors=True)

    # ---- mailboxes ---------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        name = check_name(name)
        return name == INBOX or _is_folder_dir(self._path(name))

    def open_folder(self, name: str) -> Folder | None:
        """The Folder of `name` if it was opened before (never blocks), else None."""
        folder = self._folders.get(name)
        return folder if folder is not None and not folder.closed else None

    def folder(self, name: str) -> Folder:
        """The shared Folder of a mailbox, loaded; NoSuchMailbox if there is none.

        The first call reads the uid list and scans the folder; later calls
        return the same object as is (call `refresh()` to catch up with disk).
        """
        name = check_name(name)
        with self.lock:
            folder = self._folders.get(name)
            if folder is None or folder.closed:
                if not self.exists(name):
                    raise NoSuchMailbox(f"mailbox {name} does not exist")
                folder = Folder(self, name, self._path(name), SPECIAL_USE.get(name))
                self._folders[name] = folder
        folder._check()                     # load the index (no-op when loaded)
        return folder

    def status(self, name: str) -> FolderStatus:
        folder = self.folder(name)
        folder.refresh()
        return folder.status()

    def special_use(self, use: str) -> str | None:
        """The mailbox with an RFC 6154 attribute ("\\Sent", ...), if it exists."""
        for name, attr in SPECIAL_USE.items():
            if attr.lower() == use.lower() and _is_folder_dir(self._path(name)):
                return name
        return None

    def names(self) -> list[str]:
        """Every existing mailbox, INBOX first, then sorted."""
        found = []
        for entry in os.scandir(self.root):
            name = name_from_dirname(entry.name)
            if name is not None and entry.is_dir(follow_symlinks=False) and _is_folder_dir(Path(entry.path)):
                found.append(name)
        return [INBOX, *sorted(found)]

    def list(self) -> list[MailboxInfo]:
        """All mailboxes plus \\Noselect parents that exist only through their children."""
        real = self.names()
        every = set(real)
        for name in real:
            every.update(parent_names(name))
        parents = {p for name in every for p in parent_names(name)}
        out = []
        for name in sorted(every, key=lambda n: (n != INBOX, n)):
            attrs = {"\\HasChildren" if name in parents else "\\HasNoChildren"}
            use = SPECIAL_USE.get(name) if name in real else None
            if name not in real:
                attrs.add("\\Noselect")
            if use:
                attrs.add(use)
            out.append(MailboxInfo(name, frozenset(attrs), use))
        return out

    def create(self, name: str) -> None:
        """CREATE (RFC 3501 §6.3.3), making missing parents; a trailing "." is ignored."""
        name = check_name(name, trailing_delimiter_ok=True)
        with self.lock:
            if self.exists(name):
                raise MailboxExists(f"mailbox {name} already exists")
            for parent in parent_names(name):
                if not self.exists(parent):
                    self._make_folder(parent)
            self._make_folder(name)

    def _make_folder(self, name: str) -> None:
        build = self.root / f"..new-{secrets.token_hex(6)}"
        try:
            for sub in ("cur", "new", "tmp"):
                (build / sub).mkdir(parents=True)
            (build / "maildirfolder").touch()
            UidList(build).rewrite(self.next_uidvalidity(), 1, 1, [])
            try:
                os.rename(build, self._path(name))
            except OSError:
                raise MailboxExists(f"mailbox {name} already exists") from None
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)
        fsync_path(self.root)
        self.emit(MailboxCreated, mailbox=name)

    def delete(self, name: str) -> None:
        """DELETE (RFC 3501 §6.3.4): the folder and its messages; children stay (the name turns \\Noselect)."""
        name = check_name(name)
        if name == INBOX:
            raise MailboxNotAllowed("INBOX can not be deleted")
        with self.lock:
            if not self.exists(name):
                if any(n.startswith(name + DELIMITER) for n in self.names()):
                    raise MailboxNotAllowed(f"{name} has children and no messages of its own; "
                                            f"delete the children first")
                raise NoSuchMailbox(f"mailbox {name} does not exist")
            trash = self.root / f"..trash-{secrets.token_hex(6)}"
            os.rename(self._path(name), trash)
            fsync_path(self.root)
            self._closed(name)
            shutil.rmtree(trash, ignore_errors=True)
            self.emit(MailboxDeleted, mailbox=name)

    def rename(self, old: str, new: str) -> None:
        """RENAME (RFC 3501 §6.3.5), children included; renaming INBOX moves its messages.

        Renamed folders get a new UIDVALIDITY: the new name must not show UIDs
        that an older mailbox of that name may have used.  Subscriptions are
        left as they are.
        """
        old, new = check_name(old), check_name(new)
        with self.lock:
            if not self.exists(old):
                raise NoSuchMailbox(f"mailbox {old} does not exist")
            if self.exists(new):
                raise MailboxExists(f"mailbox {new} already exists")
            if new.startswith(old + DELIMITER):
                raise MailboxNotAllowed(f"can not rename {old} into itself")
            if old == INBOX:
                self.create(new)
                inbox = self.folder(INBOX)
                inbox.move(inbox.uids(), self.folder(new))
                return
            moves = [(old, new)] + [(n, new + n[len(old):]) for n in self.names()
                                    if n.startswith(old + DELIMITER)]
            for _, target in moves:
                if self.exists(target):
                    raise MailboxExists(f"mailbox {target} already exists")
                if len(target) > 200:
                    raise MailboxNameError(f"mailbox name {target} would be too long")
            for parent in parent_names(new):
                if not self.exists(parent):
                    self._make_folder(parent)
            for source, target in moves:
                os.rename(self._path(source), self._path(target))
                self._closed(source)
                self._revalidate(self._path(target))
            fsync_path(self.root)
            for source, target in moves:
                self.emit(MailboxRenamed, mailbox=source, new_name=target)

    def _revalidate(self, path: Path) -> None:
        uidlist = UidList(path)
        loaded = uidlist.load()
        if loaded is not None:
            records = sorted(loaded.records.values(), key=lambda r: r.uid)
            uidlist.rewrite(self.next_uidvalidity(), loaded.uidnext, loaded.highestmodseq, records)

    def _closed(self, name: str) -> None:
        folder = self._folders.pop(name, None)
        if folder is not None:
            folder._close()

    # ---- subscriptions (RFC 3501 §6.3.6) ---------------------------------------------

    def _load_subscriptions(self) -> list[str]:
        try:
            lines = (self.root / "subscriptions").read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                name = check_name(line)
            except MailboxNameError:
                continue
            if name not in out:
                out.append(name)
        return out

    def subscriptions(self) -> list[str]:
        """Subscribed names, existing or not (LSUB shows both)."""
        return list(self._subscriptions)

    def subscribe(self, name: str) -> None:
        name = check_name(name)
        with self.lock:
            if name not in self._subscriptions:
                self._save_subscriptions([*self._subscriptions, name])

    def unsubscribe(self, name: str) -> bool:
        """False if the name was not subscribed."""
        name = check_name(name)
        with self.lock:
            if name not in self._subscriptions:
                return False
            self._save_subscriptions([n for n in self._subscriptions if n != name])
            return True

    def _save_subscriptions(self, names: list[str]) -> None:
        write_durable(self.root / "subscriptions", "".join(n + "\n" for n in names).encode())
        self._subscriptions = names
