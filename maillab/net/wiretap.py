"""What an eavesdropper on a session's wire gets: its plaintext octets, kept up to a bound, and
how many octets went each way in plaintext and inside TLS (no I/O: the session loop feeds it).

    tap = WireTap()
    tap.seen("client", data) -> bytes      the part of `data` to show as plaintext wire bytes
                                           (b"" under TLS, or past KEEP octets of the session)
    tap.tls_up()                           from here on, octets are counted, never kept
    tap.plain, tap.tls                     {"client": octets, "server": octets}

The counts inside TLS are of the application data the session read and wrote: the ciphertext
on the wire is that plus each record's header and tag (22 octets in TLS 1.3) and the handshake,
which asyncio's TLS transport does not let the session count.
"""

from __future__ import annotations

from typing import Literal

Side = Literal["client", "server"]
KEEP = 16 * 1024        # plaintext octets of one session kept for the view (both ways together)


class WireTap:
    __slots__ = ("plain", "tls", "encrypted")

    def __init__(self) -> None:
        self.plain: dict[Side, int] = {"client": 0, "server": 0}
        self.tls: dict[Side, int] = {"client": 0, "server": 0}
        self.encrypted = False

    def tls_up(self) -> None:
        self.encrypted = True

    def seen(self, side: Side, data: bytes) -> bytes:
        """Count `data` (sent by `side`); the part of it to keep as plaintext, if any."""
        if self.encrypted:
            self.tls[side] += len(data)
            return b""
        room = KEEP - self.plain["client"] - self.plain["server"]
        self.plain[side] += len(data)
        return data[:room] if room > 0 else b""
