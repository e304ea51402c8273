"""The lab CA (maillab/lab/ca.py) and the TLS contexts (maillab/net/tls.py): files, modes,
names, renewal, a verified handshake, and `maillab ca` / `--pem`."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
import subprocess
import sys

import pytest
from cryptography import x509

from maillab.lab.ca import RENEW_BEFORE, LabCA
from maillab.lab.state import StateDir
from maillab.net.tls import TlsInfo, client_context, server_context

NOW = dt.datetime.now(dt.timezone.utc)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sans(path) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName), [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> TlsInfo:
    """A TLS handshake in memory; the client checks the server's certificate for `name`."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = 0
        for obj in (c, s):
            try:
                obj.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done == 2:
            return TlsInfo.of(c)
    raise AssertionError("handshake did not finish")


def test_first_run_makes_a_private_ca_and_host_certificates(tmp_path):
    ca = LabCA(tmp_path / "tls")
    files = ca.host_files("smtp1.syr.edu", "127.0.0.1")
    assert ca.cert_path.exists() and mode(tmp_path / "tls") == 0o700 and mode(tmp_path / "tls" / "hosts") == 0o700
    assert mode(ca.key_path) == 0o600 and mode(files.key) == 0o600
    assert sans(files.cert) == (["smtp1.syr.edu", "localhost"], ["127.0.0.1"])   # localhost reaches 127.0.0.1
    other = ca.host_files("mx.gmail.com", "127.0.0.4")
    assert sans(other.cert) == (["mx.gmail.com"], ["127.0.0.4"])
    ca_cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())
    leaf.verify_directly_issued_by(ca_cert)


def test_certificates_are_kept_until_due_then_renewed(tmp_path):
    ca = LabCA(tmp_path / "tls")
    files = ca.host_files("mx.gmail.com", "127.0.0.4", NOW)
    first, ca_first = files.cert.read_bytes(), ca.cert_path.read_bytes()
    ca.host_files("mx.gmail.com", "127.0.0.4", NOW + dt.timedelta(days=1))
    assert files.cert.read_bytes() == first and ca.cert_path.read_bytes() == ca_first        # kept
    ca.host_files("mx.gmail.com", "127.0.0.9", NOW + dt.timedelta(days=1))                 # its address changed
    assert sans(files.cert) == (["mx.gmail.com"], ["127.0.0.9"])
    second = files.cert.read_bytes()
    leaf = x509.load_pem_x509_certificate(second)
    near_end = leaf.not_valid_after_utc - RENEW_BEFORE + dt.timedelta(hours=1)
    ca.host_files("mx.gmail.com", "127.0.0.9", near_end)                                  # within 30 days of its end
    assert files.cert.read_bytes() != second and ca.cert_path.read_bytes() == ca_first
    renewed = x509.load_pem_x509_certificate(files.cert.read_bytes())
    assert renewed.not_valid_after_utc > leaf.not_valid_after_utc


def test_a_ca_near_its_end_is_remade_and_the_hosts_with_it(tmp_path):
    ca = LabCA(tmp_path / "tls")
    files = ca.host_files("mx.gmail.com", "127.0.0.4", NOW)
    old = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    later = old.not_valid_after_utc - RENEW_BEFORE + dt.timedelta(hours=1)
    ca.host_files("mx.gmail.com", "127.0.0.4", later)
    new = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    assert new.serial_number != old.serial_number
    x509.load_pem_x509_certificate(files.cert.read_bytes()).verify_directly_issued_by(new)


def test_a_broken_key_file_is_replaced(tmp_path):
    ca = LabCA(tmp_path / "tls")
    files = ca.host_files("mx.gmail.com", "127.0.0.4")
    files.key.write_bytes(b"not a key")
    files = ca.host_files("mx.gmail.com", "127.0.0.4")
    server_context(files.cert, files.key)       # loads: the pair matches again


def test_server_and_client_contexts_verify_the_host_name(tmp_path):
    ca = LabCA(tmp_path / "tls")
    files = ca.host_files("smtp1.syr.edu", "127.0.0.1")
    server, client = server_context(files.cert, files.key), client_context(ca.cert_path)
    assert server.minimum_version == client.minimum_version == ssl.TLSVersion.TLSv1_2
    for name in ("smtp1.syr.edu", "localhost", "127.0.0.1"):
        info = handshake(server, client, name)
        assert info.protocol == "TLSv1.3" and info.bits >= 128
        assert info.summary == f"TLSv1.3 with cipher {info.cipher} ({info.bits}/{info.bits} bits)"
        assert info.note == f"TLS 1.3 {info.cipher} established"
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, client, "mx.gmail.com")
    stranger = ssl.create_default_context()     # the system's CAs do not know the lab CA
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, stranger, "smtp1.syr.edu")


def maillab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maillab", *args], capture_output=True, text=True, timeout=60)


def test_maillab_ca_prints_the_path_and_the_pem(tmp_path):
    state = tmp_path / "state"
    out = maillab("ca", "--state", str(state))
    assert out.returncode == 0, out.stderr
    path = StateDir(state).tls_dir / "ca.pem"
    assert out.stdout == f"{path}\n" and mode(state) == 0o700
    pem = maillab("ca", "--state", str(state), "--pem")
    assert pem.returncode == 0 and pem.stdout == path.read_text() and pem.stdout.startswith("-----BEGIN CERTIFICATE")
    help_text = maillab("ca", "--help").stdout
    assert "--pem" in help_text and "reset" in help_text
    reset = maillab("reset", "--state", str(state), "--yes")         # a folder `maillab ca` made is ours
    assert reset.returncode == 0 and not state.exists()
