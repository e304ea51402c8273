"""POP3, the simple access agent (RFC 1939 + RFC 2449 CAPA + RFC 5034 SASL).

`protocol.py` is the protocol without I/O (`Pop3Connection`, its events);
`server.py` the asyncio adapter that binds it to sockets, the directory and the
mail store (`Pop3Server`, one per mailbox host).
"""

from .protocol import (NEED_DATA, PAUSED, Authenticate, Closed, Pop3Connection, Pop3UsageError, Retrieve,
                       StartTls, State, Update, stuff, top_of, uidl_for)

__all__ = ["Pop3Connection", "State", "NEED_DATA", "PAUSED", "Authenticate", "Retrieve", "Update",
           "StartTls", "Closed", "Pop3UsageError", "stuff", "top_of", "uidl_for", "Pop3Server"]


def __getattr__(name: str) -> object:
    if name == "Pop3Server":            # the adapter pulls in asyncio and the lab; load it on demand
        from .server import Pop3Server
        return Pop3Server
    raise AttributeError(name)
