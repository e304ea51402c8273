"""TLS for the lab's sockets: the SSLContexts of a server host and of a client trusting the lab
CA, and what a session's TLS turned out to be (files come from `lab/ca.py`).

    server_context(cert, key)   a host's server side: TLS 1.2 minimum, the ssl module's
                                defaults otherwise (ciphers, no compression, tickets)
    client_context(ca_file)     a client that trusts the lab CA (only): hostname checked,
                                TLS 1.2 minimum; for outbound SMTP between MTAs and tests
    TlsInfo.of(ssl_object)      protocol, cipher and bits of an established session;
                                `.summary` ("TLSv1.3 with cipher X (256/256 bits)", Postfix's
                                words, used in Received and the maillog) and `.note`
                                ("TLS 1.3 X established", the transcript's line)

`HANDSHAKE_TIMEOUT` bounds every server handshake (a client that sends nothing, or garbage
instead of a ClientHello, is dropped, never left to hold a session).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

HANDSHAKE_TIMEOUT = 10.0        # seconds for a client to finish its TLS handshake


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server side of a lab host's TLS, with its certificate chain and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(ca_file: Path) -> ssl.SSLContext:
    """A verifying client that trusts the lab CA and nothing else (the lab is its own Internet)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)      # CERT_REQUIRED, check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=ca_file)
    return ctx


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What an established TLS session is: "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256."""
    protocol: str
    cipher: str
    bits: int

    @classmethod
    def of(cls, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> "TlsInfo":
        name, _, bits = ssl_object.cipher() or ("?", "", 0)
        return cls(ssl_object.version() or "?", name, bits)

    @property
    def summary(self) -> str:
        """Postfix's words: "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"."""
        return f"{self.protocol} with cipher {self.cipher} ({self.bits}/{self.bits} bits)"

    @property
    def note(self) -> str:
        """The transcript's line: "TLS 1.3 TLS_AES_256_GCM_SHA384 established"."""
        return f"{self.protocol.replace('TLSv', 'TLS ')} {self.cipher} established"
