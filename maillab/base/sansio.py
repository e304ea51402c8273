"""What the sans-IO protocol objects (IMAP, POP3, SMTP) share: the markers `next_event()`
returns instead of an event, the events all of them have, and the buffers of the line protocols."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .events import Direction


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
    IMAP wants the user's store, POP3 its maildrop locked and opened).  `password` is None when
    the mechanism proved the login itself (SCRAM, base/sasl.py): then `proven` is the account
    whose stored keys the client's proof matched, None if it did not."""
    login: str
    password: str | None
    mechanism: str      # IMAP: "LOGIN" (the command); POP3: "USER"; else the SASL mechanism
    proven: str | None = None


@dataclass(frozen=True, slots=True)
class StartTls:
    """STARTTLS (IMAP, RFC 3501 §6.2.1) or STLS (POP3, RFC 2595 §4) accepted: flush, start TLS,
    then call `tls_started()`."""


# An IMAP NO / POP3 -ERR to a login before TLS when the policy wants TLS first (Dovecot's words)
PLAINTEXT_REFUSED = "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over: send what `data_to_send()` holds, then close the connection."""
    reason: str


class LineBuffers:
    """The buffers of a line protocol's connection (POP3, SMTP): bytes in (`_in`, b"" for the
    client's EOF, bounded to what the adapter may feed ahead of NEED_DATA), reply bytes out
    (`_out`) and the transcript lines since the last look (`_log`)."""
    MAX_BUFFER: ClassVar[int] = 1 << 20          # unread input beyond this is the adapter's bug
    UsageError: ClassVar[type[Exception]] = RuntimeError

    def __init__(self) -> None:
        self._in = bytearray()
        self._eof = False
        self._out: list[bytes] = []
        self._log: list[tuple[Direction, str]] = []

    def receive_data(self, data: bytes) -> None:
        """Add received bytes; b"" means the client closed its side."""
        if self._eof:
            raise self.UsageError("receive_data after end of stream")
        if not data:
            self._eof = True
            return
        if len(self._in) + len(data) > self.MAX_BUFFER:
            raise self.UsageError("input buffer overflow: feed data only after NEED_DATA")
        self._in += data

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def transcript(self) -> list[tuple[Direction, str]]:
        """The session's lines since the last call: client commands, server lines, notes."""
        out, self._log = self._log, []
        return out
