"""The lab CA: a certificate authority made on first run in the state folder, and one
certificate per lab host, signed by it (files only; `net/tls.py` turns them into SSLContexts).

    <state>/tls/            0700
      ca.pem  ca.key        the CA (ECDSA P-256, 10 years); ca.key 0600
      ca.lock               held (fcntl) while the CA or a host certificate is made
      hosts/<host>.pem      the host's certificate (leaf, then the CA)
      hosts/<host>.key      its key, 0600

API:
    ca = LabCA(state_root / "tls")
    ca.ensure()                          -> the CA's certificate path (made if missing or near expiry)
    ca.host_files(name, address, now)    -> HostFiles(cert, key): made or renewed as needed
    ca.cert_path                         what clients trust (`maillab ca` prints it)

A host certificate names the host (DNS SAN) and its loopback address (IP SAN); the host
at 127.0.0.1 (which `localhost` reaches) is also `localhost`.  It is (re)issued when missing,
unreadable, within `RENEW_BEFORE` of its end, naming other names than wanted, or not signed
by the current CA.  A CA within `RENEW_BEFORE` of its end is remade (and so every host
certificate with it).  Files are written to a temp name and renamed; keys are 0600.
`maillab reset` deletes the state folder, CA included: the next run makes a new CA at the
same path (clients pointed at the path keep working; a CA imported elsewhere must be again).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..base.fsutil import private_dir, write_durable

CA_LIFETIME = dt.timedelta(days=3650)
HOST_LIFETIME = dt.timedelta(days=397)      # the longest a public CA may issue (CA/B Forum)
RENEW_BEFORE = dt.timedelta(days=30)
CA_NAME = "maillab lab CA"


@dataclass(frozen=True, slots=True)
class HostFiles:
    """A host's certificate chain (PEM: leaf, CA) and key, ready for `load_cert_chain`."""
    cert: Path
    key: Path


def host_names(name: str, address: str) -> tuple[list[str], list[str]]:
    """The DNS and IP names a lab host's certificate carries."""
    dns = [name.lower()] + (["localhost"] if address == "127.0.0.1" else [])
    return dns, [address]


class LabCA:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cert_path = folder / "ca.pem"
        self.key_path = folder / "ca.key"

    def ensure(self, now: dt.datetime | None = None) -> Path:
        """The CA certificate's path; the CA is made first if it is missing or near its end."""
        with self._locked():
            self._ca(now or _utcnow())
        return self.cert_path

    def host_files(self, name: str, address: str, now: dt.datetime | None = None) -> HostFiles:
        """The certificate and key of host `name` at `address`, issued or renewed if needed."""
        now = now or _utcnow()
        with self._locked():
            ca_cert, ca_key = self._ca(now)
            files = HostFiles(self.folder / "hosts" / f"{name}.pem", self.folder / "hosts" / f"{name}.key")
            if not _host_cert_good(files, ca_cert, host_names(name, address), now):
                self._issue(files, name, address, ca_cert, ca_key, now)
        return files

    # ---- inside the lock ------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        private_dir(self.folder)
        private_dir(self.folder / "hosts")
        fd = os.open(self.folder / "ca.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _ca(self, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The CA as it is on disk, or a new one if it is missing, unreadable or near its end."""
        try:
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
            if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc - RENEW_BEFORE > now \
                    and cert.public_key() == key.public_key():
                return cert, key
        except (OSError, ValueError, TypeError):
            pass
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "maillab"),
                             x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (_builder(subject, subject, key.public_key(), now, CA_LIFETIME)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256()))
        _write_key(self.key_path, key)            # the key first: a cert on disk always has its key
        write_durable(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cert, key

    def _issue(self, files: HostFiles, name: str, address: str, ca_cert: x509.Certificate,
               ca_key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        dns, ips = host_names(name, address)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "maillab"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name.lower())])
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (_builder(subject, ca_cert.subject, key.public_key(), now, HOST_LIFETIME)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write_key(files.key, key)
        write_durable(files.cert, cert.public_bytes(serialization.Encoding.PEM)
                      + ca_cert.public_bytes(serialization.Encoding.PEM))


def _host_cert_good(files: HostFiles, ca_cert: x509.Certificate, names: tuple[list[str], list[str]],
                    now: dt.datetime) -> bool:
    """Whether the host's certificate and key on disk may be served as they are."""
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        key = serialization.load_pem_private_key(files.key.read_bytes(), None)
        cert.verify_directly_issued_by(ca_cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    dns, ips = names
    return (cert.public_key() == key.public_key() and cert.not_valid_after_utc - RENEW_BEFORE > now
            and sorted(sans.get_values_for_type(x509.DNSName)) == sorted(dns)
            and sorted(str(ip) for ip in sans.get_values_for_type(x509.IPAddress)) == sorted(ips))


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             now: dt.datetime, lifetime: dt.timedelta) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + lifetime))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """A private key, PEM (PKCS#8, unencrypted), 0600 (write_durable's temp file is made 0600)."""
    write_durable(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
