"""Outbound TLS between MTAs: Postfix's `smtp_tls_security_level`, and what a session's TLS was worth.

The level a sending MTA uses for a destination domain (the world's
`smtp_tls_security_level`, or the domain's own, as Postfix's smtp_tls_policy_maps):

    none     plaintext; STARTTLS is never sent
    may      STARTTLS when the server offers it (RFC 3207), plaintext otherwise: opportunistic,
             so a man in the middle who strips the offer reads the mail (MTA-STS, RFC 8461,
             and DANE, RFC 7672, exist for that); the certificate is looked at, not required
    encrypt  STARTTLS required (not offered: "TLS is required, but was not offered by host",
             4.7.4, the mail waits); any certificate will do
    verify   STARTTLS required, and the certificate must chain to the lab CA and name the MX
             host; otherwise the handshake fails and the try is deferred

`OutboundTls(ca_file)` gives the client side of each level: the dialogue's mode
(`client_protocol.Mode`) and the SSLContext (a verifying one for `verify`, one
that accepts any certificate for `may` and `encrypt`).  `trust(ssl_object, mx)`
says what an established session's certificate was worth, in Postfix's words
("Verified TLS connection established to …"): "Verified" (chains to the lab CA
and names the MX host), "Trusted" (chains to the lab CA only) or "Untrusted".
"""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ..net.tls import client_context
from .client_protocol import Mode

Level = Literal["none", "may", "encrypt", "verify"]
Trust = Literal["Verified", "Trusted", "Untrusted"]

_MODES: dict[Level, Mode] = {"none": "plain", "may": "may", "encrypt": "starttls", "verify": "starttls"}


class OutboundTls:
    def __init__(self, ca_file: Path) -> None:
        self.ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
        self._verifying = client_context(ca_file)
        self._any = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._any.minimum_version = ssl.TLSVersion.TLSv1_2
        self._any.check_hostname = False
        self._any.verify_mode = ssl.CERT_NONE             # looked at afterwards (`trust`)

    @staticmethod
    def mode(level: Level) -> Mode:
        return _MODES[level]

    def context(self, level: Level) -> ssl.SSLContext | None:
        """The SSLContext for `level`; None for "none"."""
        return None if level == "none" else self._verifying if level == "verify" else self._any

    def trust(self, ssl_object: ssl.SSLObject | ssl.SSLSocket | None, mx: str) -> Trust:
        """What the server's certificate was worth (the leaf is all a TLS 1.3 server must send
        beyond its chain, and lab hosts send leaf and CA)."""
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return "Untrusted"
        try:
            leaf = x509.load_der_x509_certificate(der)
        except ValueError:
            return "Untrusted"
        try:
            verifier = PolicyBuilder().store(Store([self.ca])).build_server_verifier(x509.DNSName(mx.lower()))
            verifier.verify(leaf, [])
            return "Verified"
        except (VerificationError, ValueError):
            pass
        try:
            leaf.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError, InvalidSignature):
            return "Untrusted"
        now = dt.datetime.now(dt.timezone.utc)
        return "Trusted" if leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc else "Untrusted"
