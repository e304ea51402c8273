"""The lab's mail store: every user's mail in the state folder, one instance per lab.

`MailStore` maps an account address to its `UserStore` (made on first use,
then kept), delivers for the MDA, holds the POP3 maildrop locks, and puts the
store's events on the bus.

Threads: the store is built on the loop thread (it remembers the running
loop); its blocking methods may then run there or in worker threads
(`asyncio.to_thread`).  Every event goes to the loop through
`call_soon_threadsafe`, from whichever thread commits, so the bus is only
touched on the loop thread and events arrive in commit order (commits of a
user are serialised by its lock); they reach subscribers on the next turn of
the loop.  Without a running loop (scripts, plain tests) events are published
at once.
"""

from __future__ import annotations

import asyncio
import threading

from ..base.clock import Clock
from ..base.events import Event, EventBus
from ..base.fsutil import MAY_BLOCK, Steps, finish
from ..lab.state import StateDir, StateError
from .errors import MaildropBusy, NoSuchMailbox, StoreError
from .flags import letters_for, normalize_flags
from .folder import Folder
from .message import Delivery
from .names import INBOX
from .user import UserStore


class MaildropLock:
    """One POP3 session's hold on a maildrop (RFC 1939 §8); release it, or use `with`."""

    def __init__(self, owner: "MailStore", address: str) -> None:
        self._owner = owner
        self.address = address
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            with self._owner._mutex:
                self._owner._maildrops.discard(self.address)

    def __enter__(self) -> "MaildropLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class MailStore:
    def __init__(self, state: StateDir, bus: EventBus | None = None, clock: Clock | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.state = state
        self.bus = bus
        self.clock = clock or Clock()
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self._loop = loop
        self._mutex = threading.Lock()
        self._users: dict[str, UserStore] = {}
        self._user_locks: dict[str, threading.Lock] = {}
        self._maildrops: set[str] = set()

    def now(self) -> float:
        return self.clock.now()

    def publish(self, event: Event) -> None:
        """Put an event on the bus from any thread (see the module docstring)."""
        if self.bus is None:
            return
        loop = self._loop
        if loop is None or not loop.is_running():
            self.bus.publish(event)
            return
        try:
            loop.call_soon_threadsafe(self.bus.publish, event)
        except RuntimeError:
            pass                            # the loop closed meanwhile: nobody is listening any more

    # ---- users -------------------------------------------------------------------------

    @staticmethod
    def normalize_address(address: str) -> str:
        address = address.strip().lower()
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain or domain.startswith(".") or "/" in domain \
                or "\x00" in domain or domain in ("..",):
            raise StoreError(f"not a mailbox address: {address!r}")
        return address

    def user(self, address: str) -> UserStore:
        """The store of one account (created with its Maildir and special-use folders on first use).

        The caller vouches that the address is an account of this host (the
        directory has said so); the store only checks that it is a safe path.
        Blocking on first use of each user.
        """
        address = self.normalize_address(address)
        user = self._users.get(address)
        if user is not None:
            return user
        with self._mutex:
            lock = self._user_locks.setdefault(address, threading.Lock())
        with lock:
            user = self._users.get(address)
            if user is None:
                local, _, domain = address.rpartition("@")
                try:
                    root = self.state.maildir(domain, local)
                except StateError as e:
                    raise StoreError(str(e)) from None
                user = UserStore(self, address, root)
                self._users[address] = user
            return user

    # ---- delivery (the MDA) ------------------------------------------------------------

    def deliver(self, address: str, data: bytes, mailbox: str = INBOX,
                flags: tuple[str, ...] = ()) -> Delivery:
        """Deliver one message now: `deliver_steps` with an fsync at each step. Blocking."""
        return finish(self.deliver_steps(address, data, mailbox, flags))

    def deliver_steps(self, address: str, data: bytes, mailbox: str = INBOX,
                      flags: tuple[str, ...] = (), tag: str = "") -> Steps[Delivery]:
        """Durability steps (maillab.base.fsutil) that deliver one message (already in stored
        form: LF, Return-Path/Delivered-To on top).

        The file goes to `new/` (with flags: `cur/`) of `mailbox`, or of INBOX if
        that mailbox does not exist, through tmp/ made durable before its rename
        and the folder after it: when the steps end the message is safe on disk.
        It is indexed and `MessagesAdded` published; if only the indexing fails
        the message is still delivered (uid None) and the next refresh finds it.
        `tag` goes into the file name (`,I=`, see store.maildir).
        When the user or folder is not open yet, the steps yield `MAY_BLOCK`
        before opening it (it may need a scan of the folder).
        """
        if not self.is_open(address, mailbox):
            yield MAY_BLOCK
        folder = self.target(address, mailbox)
        letters = None
        sub = "new"
        if flags:
            user = folder.user
            letters = letters_for(normalize_flags(flags, user.keywords), user.keywords)
            sub = "cur"
        message = yield from folder.add_steps(data, letters, None, sub, keep_unindexed=True, tag=tag)
        return Delivery(str(folder.path / message.relpath), folder.name, message.uid or None)

    def target(self, address: str, mailbox: str = INBOX) -> Folder:
        """The folder a delivery to `mailbox` goes to (INBOX if there is no such mailbox), loaded.
        Blocking on first use."""
        user = self.user(address)
        folder = user.open_folder(mailbox)           # without the user's lock, if open and loaded
        if folder is not None and folder.loaded:
            return folder
        try:
            return user.folder(mailbox)
        except (NoSuchMailbox, StoreError):
            return user.folder(INBOX)

    def is_open(self, address: str, mailbox: str = INBOX) -> bool:
        """Whether `target(address, mailbox)` is in memory already (then it does not block)."""
        try:
            user = self._users.get(self.normalize_address(address))
        except StoreError:
            return False
        folder = user.open_folder(mailbox) if user is not None else None
        return folder is not None and folder.loaded

    # ---- POP3 ----------------------------------------------------------------------------

    def lock_maildrop(self, address: str) -> MaildropLock:
        """Take the user's maildrop for a POP3 session; MaildropBusy if another session has it."""
        address = self.normalize_address(address)
        with self._mutex:
            if address in self._maildrops:
                raise MaildropBusy("maildrop already locked by another POP3 session")
            self._maildrops.add(address)
        return MaildropLock(self, address)

    def maildrop_locked(self, address: str) -> bool:
        return self.normalize_address(address) in self._maildrops

