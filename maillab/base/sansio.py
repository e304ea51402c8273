"""What the sans-IO protocol objects (IMAP, POP3) share: the markers `next_event()` returns
instead of an event, and the three events both of them have."""

from __future__ import annotations

from dataclasses import dataclass


class Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = Sentinel("NEED_DATA")      # feed more bytes
PAUSED = Sentinel("PAUSED")            # an event waits for the adapter's answer


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Check a login; answer `login_ok(...)` or `login_failed(...)` (each protocol says with what:
    IMAP wants the user's store, POP3 its maildrop locked and opened)."""
    login: str
    password: str
    mechanism: str      # IMAP: "LOGIN" (the command), SASL "PLAIN" or "LOGIN"; POP3: "USER" or "PLAIN"


@dataclass(frozen=True, slots=True)
class StartTls:
    """STARTTLS (IMAP, RFC 3501 §6.2.1) or STLS (POP3, RFC 2595 §4) accepted: flush, start TLS,
    then call `tls_started()`."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over: send what `data_to_send()` holds, then close the connection."""
    reason: str
