"""Each mail domain's DKIM keys (RFC 6376 §3.6, RFC 8463): made on first run, kept in the state folder.

`DomainKeys.load_or_make(folder, domain)` reads `<folder>/<domain>/lab.key`
(RSA 2048, PEM) and `<folder>/<domain>/lab-ed25519.key` (the Ed25519 seed,
base64, as dkimpy takes it), making them the first time (0600, temp file then
rename).  `records()` gives the TXT records the lab DNS serves for them —
`lab._domainkey.<domain>` (`k=rsa`) and `lab-ed25519._domainkey.<domain>`
(`k=ed25519`) — the public halves of the keys on disk, so a key made anew is
served anew.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ..base.fsutil import write_durable

RSA_SELECTOR = "lab"
ED25519_SELECTOR = "lab-ed25519"


@dataclass(frozen=True, slots=True)
class SigningKey:
    selector: str
    algorithm: bytes            # dkimpy's signature_algorithm
    private: bytes              # what dkimpy's sign() takes
    public_txt: str             # the key record's text (RFC 6376 §3.6.1)


@dataclass(frozen=True, slots=True)
class DomainKeys:
    domain: str
    keys: tuple[SigningKey, ...]

    @classmethod
    def load_or_make(cls, folder: Path, domain: str) -> "DomainKeys":
        where = folder / domain
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        rsa_file, ed_file = where / f"{RSA_SELECTOR}.key", where / f"{ED25519_SELECTOR}.key"
        if not rsa_file.exists():
            made = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            write_durable(rsa_file, made.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                                       serialization.NoEncryption()))
        if not ed_file.exists():
            seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
            write_durable(ed_file, base64.b64encode(seed) + b"\n")
        rsa_pem = rsa_file.read_bytes()
        rsa_key = serialization.load_pem_private_key(rsa_pem, password=None)
        rsa_public = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        seed_b64 = ed_file.read_bytes().strip()
        ed_public = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64)).public_key() \
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(domain, (
            SigningKey(RSA_SELECTOR, b"rsa-sha256", rsa_pem,
                       f"v=DKIM1; k=rsa; p={base64.b64encode(rsa_public).decode()}"),
            SigningKey(ED25519_SELECTOR, b"ed25519-sha256", seed_b64,
                       f"v=DKIM1; k=ed25519; p={base64.b64encode(ed_public).decode()}")))

    def records(self) -> list[tuple[str, str]]:
        """(owner relative to the domain's zone, TXT data as zone text: strings of <= 255 octets)."""
        return [(f"{k.selector}._domainkey", " ".join(f'"{k.public_txt[i:i + 255]}"'
                                                      for i in range(0, len(k.public_txt), 255)))
                for k in self.keys]
