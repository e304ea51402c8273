"""The errors the mail store raises; every one is a `StoreError`.

Each error's str() is one line fit to follow an IMAP `NO` or a POP3 `-ERR`.
The classes say who is at fault: `MailboxNameError` and `FlagError` are bad
input from the client (IMAP may answer BAD or NO), the others describe the
state of the store (IMAP NO, with the response code in `code` where RFC 5530
has one).  An `OSError` from the file system is passed through unchanged.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class; `code` is an RFC 5530 response code ("" if none fits)."""
    code: str = ""


class MailboxNameError(StoreError):
    """The name is not an acceptable mailbox name (path tricks, NUL, bad modified UTF-7)."""
    code = "CANNOT"


class NoSuchMailbox(StoreError):
    code = "NONEXISTENT"


class MailboxExists(StoreError):
    code = "ALREADYEXISTS"


class MailboxNotAllowed(StoreError):
    """The operation is not allowed on this mailbox (delete INBOX, rename into itself, ...)."""
    code = "CANNOT"


class FlagError(StoreError):
    """A flag the client may not set (\\Recent, an unknown system flag, a bad keyword)."""
    code = "CANNOT"


class KeywordLimit(StoreError):
    """All 26 Maildir keyword letters (a-z) of this user are taken."""
    code = "LIMIT"


class MessageGone(StoreError):
    """The message was expunged (perhaps by another program) before it could be read."""
    code = "EXPUNGEISSUED"


class MaildropBusy(StoreError):
    """Another POP3 session holds this user's maildrop (RFC 2449 IN-USE)."""
    code = "IN-USE"
