"""IMAP4rev1, the full access agent (RFC 3501 with IDLE, UIDPLUS, MOVE, NAMESPACE, ID, LITERAL+,
SPECIAL-USE, UNSELECT, ENABLE and CONDSTORE).

Without I/O: `framing.py` (lines and literals, limits), `parser.py` (grammar →
`Command`), `protocol.py` (`ImapConnection`, the session's state machine and
its events), `mailboxes.py` and `messages.py` (the command handlers),
`view.py` (sequence numbers of the selected mailbox), `fetch.py`,
`envelope.py`, `mime.py` (FETCH data), `search.py` (SEARCH keys),
`response.py` (response encoding, transcript).  `server.py` is the asyncio
adapter that binds it to sockets, the directory and the mail store
(`ImapServer`, one per mailbox host).
"""

from .protocol import (NEED_DATA, PAUSED, Authenticate, Closed, Execute, ImapConnection, ImapUsageError,
                       StartTls, State)

__all__ = ["ImapConnection", "State", "NEED_DATA", "PAUSED", "Authenticate", "Execute", "StartTls",
           "Closed", "ImapUsageError", "ImapServer"]


def __getattr__(name: str) -> object:
    if name == "ImapServer":            # the adapter pulls in asyncio and the lab; load it on demand
        from .server import ImapServer
        return ImapServer
    raise AttributeError(name)
