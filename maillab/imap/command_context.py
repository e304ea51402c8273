"""What an IMAP command handler (`mailboxes`, `messages`, `inline`) may use of its session:
`CommandContext`, the part of `ImapConnection` a handler sees, and `Result`, what it returns.

The handlers sit below the connection: they import this, never the connection itself."""

from __future__ import annotations

from typing import Protocol

from ..store import Folder, UserStore
from .response import Out
from .view import View

Result = str | tuple[str, str] | None       # what a handler returns: text, or (code, text), for OK


class CommandContext(Protocol):
    out: Out                                # where responses go
    user: UserStore | None                  # the logged-in user's store
    view: View | None                       # the selected mailbox, if any
    condstore: bool                         # RFC 7162 §3.1: CONDSTORE enabled in this session
    stats: dict[str, int]                   # octets in, messages fetched, deleted, expunged, appended

    def select(self, folder: Folder, readonly: bool) -> View: ...
    def unselect(self) -> None: ...
    def enable_condstore(self) -> None: ...
    def announce_keywords(self) -> None: ...
    def send_flags(self) -> None: ...
