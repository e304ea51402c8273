"""The values the store hands out: messages, folder status, mailbox list entries.

All are immutable: a `Message` is a snapshot of one message at one moment,
and a new one replaces it in the folder when its flags change.  (`Message` is
a NamedTuple rather than a frozen dataclass because a 10,000-message folder
builds 10,000 of them on open, and a tuple is built four times faster.)
`Message.cache` is the exception on purpose: a dict shared by every snapshot of the same
(folder, UID), free for the IMAP and POP3 code to keep parsed headers, the
ENVELOPE or BODYSTRUCTURE in.  It is safe to cache anything derived from the
message's bytes there, because a message's bytes never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class Message(NamedTuple):
    uid: int
    key: str                    # the Maildir base name: unique in the folder, stable (POP3 UIDL material)
    flags: frozenset[str]       # "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", keywords
    modseq: int                 # RFC 7162 MODSEQ of the last change
    size: int                   # RFC822.SIZE: octets with CRLF line endings
    internaldate: int           # seconds since the epoch (the file's mtime)
    relpath: str                # "cur/<file name>" or "new/<file name>", relative to the folder
    cache: dict[str, Any]       # shared by all snapshots of this (folder, uid); see above

    def __repr__(self) -> str:
        return (f"Message(uid={self.uid}, flags={sorted(self.flags)}, modseq={self.modseq}, "
                f"size={self.size}, key={self.key!r})")


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What IMAP STATUS (RFC 3501 §6.3.10, RFC 7162) and POP3 STAT need; RECENT is per session."""
    messages: int
    uidnext: int
    uidvalidity: int
    unseen: int                 # messages without \\Seen
    highestmodseq: int
    size: int                   # sum of RFC822.SIZE (POP3 STAT's octets)
    deleted: int                # messages with \\Deleted


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    """One LIST entry: the wire name and its attributes.

    attributes hold \\HasChildren or \\HasNoChildren (RFC 3348), \\Noselect for a
    name that exists only as the parent of others, and the RFC 6154 special
    use (\\Sent, \\Drafts, \\Trash, \\Junk) where one applies.
    """
    name: str
    attributes: frozenset[str]
    special_use: str | None = None


@dataclass(frozen=True, slots=True)
class StoreResult:
    """Outcome of `Folder.store`: the messages whose flags changed, and (CONDSTORE)
    the UIDs left alone because their MODSEQ was above UNCHANGEDSINCE (RFC 7162 §3.1.3)."""
    changed: tuple[Message, ...]
    modified: tuple[int, ...]
    modseq: int                 # the MODSEQ given to the changed messages (0 if none changed)


@dataclass(frozen=True, slots=True)
class Changes:
    """What one `Folder.refresh()` found that the store did not know about."""
    added: tuple[int, ...] = ()
    expunged: tuple[int, ...] = ()
    flags: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.expunged or self.flags)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where `MailStore.deliver` put a message; uid is None if indexing failed (found later)."""
    path: str
    mailbox: str
    uid: int | None
