"""TLS on every port of the contract (issue 16 items 2 and 4), against a running lab with real
sockets and real clients: STARTTLS on SMTP 2525 and submission 2587, IMAP 1143 STARTTLS, POP3
1110 STLS, TLS on connect on 2465, 1993 and 1995, all verified against the lab CA (openssl
s_client, swaks, curl, Python's smtplib/imaplib/poplib); the STARTTLS command-injection test
for each protocol; garbage or TLS 1.1 instead of a ClientHello; logins before TLS refused by
default and allowed when the world says `auth_over_plaintext = true`."""

from __future__ import annotations

import asyncio
import base64
import gc
import imaplib
import logging
import poplib
import re
import smtplib
import socket
import ssl
import stat
import subprocess
import time

import pytest

from maillab.base.events import SessionLine, SessionOpened, TlsEstablished
from maillab.net import tls
from maillab.tui.explain import Explainer
from conftest import async_wait_for, maildir_messages
from netutil import require_tool

HOST = "127.0.0.1"              # smtp1.syr.edu, which `localhost` reaches
ELSEWHERE = "127.0.0.9"         # a client on another machine of the lab's loopback (no host of the world)
NAME = "smtp1.syr.edu"
PLAIN = base64.b64encode(b"\0mafudge@syr.edu\0maillab").decode()
plaintext_world = pytest.mark.world(auth_over_plaintext=True)


def ca_file(lab) -> str:
    return str(lab.state.tls_dir / "ca.pem")


def verifying(lab) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file(lab))


def run(*argv: str, stdin: bytes = b"", timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)


async def in_thread(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return await asyncio.to_thread(run, *argv, stdin=stdin)


def maillog(lab) -> str:
    return (lab.state.maillog).read_text() if lab.state.maillog.exists() else ""


# ---- raw sockets ---------------------------------------------------------------------------

class Line:
    """A blocking line client on a socket that may turn into TLS."""

    def __init__(self, port: int, host: str = HOST, source: str | None = None) -> None:
        self.sock = socket.create_connection((host, port), timeout=10,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed; had {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self) -> list[bytes]:
        """An SMTP reply's lines."""
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def tls(self, ctx: ssl.SSLContext, name: str = NAME) -> None:
        assert not self.buf, f"plaintext left before TLS: {self.buf!r}"
        self.sock = ctx.wrap_socket(self.sock, server_hostname=name)

    def rest(self) -> bytes:
        """Whatever arrives until the server closes or goes quiet for a second."""
        self.sock.settimeout(1)
        out = self.buf
        try:
            while chunk := self.sock.recv(65536):
                out += chunk
        except (TimeoutError, socket.timeout, ssl.SSLError, ConnectionError):
            pass
        return out

    def close(self) -> None:
        self.sock.close()


async def blocking(fn, *args):
    """`fn(*args)` in a worker thread: the lab runs on this test's loop meanwhile."""
    return await asyncio.to_thread(fn, *args)


# ---- the certificate files of a running lab ------------------------------------------------

async def test_a_running_lab_keeps_its_keys_private(lab):
    tls = lab.state.tls_dir
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700
    keys = list(tls.rglob("*.key"))
    assert len(keys) == 1 + len(lab.world.hosts)
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)


async def test_every_mailbox_host_listens_on_the_tls_ports(lab):
    by = {(e.service, e.host) for e in lab.endpoints}
    for domain in lab.world.domains.values():
        for service in ("smtps", "imaps", "pop3s"):
            assert (service, domain.mailbox_host) in by
    assert ("smtps", "smtp2.syr.edu") not in by            # a backup MX keeps no mailboxes


# ---- openssl s_client ------------------------------------------------------------------------

def s_client(lab, *args: str, stdin: bytes = b"") -> str:
    openssl = require_tool("openssl")
    out = run(openssl, "s_client", "-CAfile", ca_file(lab), "-verify_return_error",
              "-verify_hostname", NAME, "-brief", *args, stdin=stdin)
    return (out.stdout + out.stderr).decode("utf-8", "replace")


@pytest.mark.parametrize("proto,port", [("smtp", "smtp"), ("smtp", "submission"), ("imap", "imap"),
                                        ("pop3", "pop3")])
async def test_openssl_starttls_verifies_the_lab_ca(lab, proto, port):
    text = await blocking(s_client, lab, "-starttls", proto, "-connect", f"{HOST}:{getattr(lab.ports, port)}")
    assert "Verification: OK" in text, text
    assert "Protocol version: TLSv1.3" in text, text


@pytest.mark.parametrize("port,greeting,bye", [("smtps", "220 smtp1.syr.edu", b"QUIT"),
                                               ("imaps", "* OK [CAPABILITY", b"a LOGOUT"), ("pop3s", "+OK", b"QUIT")])
async def test_openssl_tls_on_connect_verifies_the_lab_ca(lab, port, greeting, bye):
    text = await blocking(lambda: s_client(lab, "-connect", f"{HOST}:{getattr(lab.ports, port)}", "-crlf",
                                           "-ign_eof", stdin=bye + b"\n"))
    assert "Verification: OK" in text and greeting in text, text


# ---- swaks, curl --------------------------------------------------------------------------

def swaks(lab, *args: str) -> list[str]:
    return [require_tool("swaks"), "--tls-verify", "--tls-ca-path", ca_file(lab), "--from", "mafudge@syr.edu",
               "--to", "tajorgen@syr.edu", "--auth", "PLAIN", "--auth-user", "mafudge@syr.edu",
               "--auth-password", "maillab", *args]


@pytest.mark.parametrize("mode,port", [("--tls", "submission"), ("--tls", "smtp"), ("--tls-on-connect", "smtps")])
async def test_swaks_with_tls_and_auth_delivers_stamped_esmtpsa(lab, mode, port):
    out = await in_thread(*swaks(lab, mode, "--server", f"{HOST}:{getattr(lab.ports, port)}",
                                 "--header", f"Subject: {mode} {port}"))
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "tajorgen@syr.edu"))
    received = msgs[0]["Received"]
    assert "with ESMTPSA" in received
    assert "(using TLSv1.3 with cipher TLS_" in received and "bits))" in received


async def test_curl_reads_mail_over_imaps_pop3s_and_starttls(lab):
    curl = require_tool("curl")
    base = ["--cacert", ca_file(lab), "-sS", "-u", "mafudge@syr.edu:maillab"]
    for url in (f"imaps://localhost:{lab.ports.imaps}/", f"pop3s://localhost:{lab.ports.pop3s}/"):
        out = await in_thread(curl, *base, url)
        assert out.returncode == 0, (url, out.stderr)
    listing = await in_thread(curl, *base, "--ssl-reqd", f"imap://localhost:{lab.ports.imap}/")
    assert listing.returncode == 0 and b"INBOX" in listing.stdout, listing.stderr
    stat_ = await in_thread(curl, *base, "--ssl-reqd", f"pop3://localhost:{lab.ports.pop3}/")
    assert stat_.returncode == 0, stat_.stderr
    wrong = await in_thread(curl, "-sS", "-u", "mafudge@syr.edu:maillab", f"imaps://localhost:{lab.ports.imaps}/")
    assert wrong.returncode == 60          # the system's CAs do not know the lab CA: curl refuses


# ---- Python's clients, hostname verified -------------------------------------------------

def python_clients(ctx: ssl.SSLContext, ports) -> None:
    with smtplib.SMTP("localhost", ports.submission, timeout=10) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth") and smtp.has_extn("starttls")
        smtp.starttls(context=ctx)
        smtp.ehlo()
        assert "PLAIN" in smtp.esmtp_features["auth"]
        smtp.login("mafudge@syr.edu", "maillab")
    with smtplib.SMTP_SSL("localhost", ports.smtps, context=ctx, timeout=10) as smtp:
        smtp.login("mafudge@syr.edu", "maillab")
    # mail.northpole.org (127.0.0.3): this client (127.0.0.1) is on another machine of it
    imap = imaplib.IMAP4("127.0.0.3", ports.imap, timeout=10)
    assert "LOGINDISABLED" in imap.capabilities
    imap.starttls(ssl_context=ctx)                  # verifies the certificate's IP address
    assert "LOGINDISABLED" not in imap.capabilities
    imap.login("santa@northpole.org", "maillab")
    imap.logout()
    imap = imaplib.IMAP4_SSL("localhost", ports.imaps, ssl_context=ctx, timeout=10)
    imap.login("mafudge", "maillab")
    imap.logout()
    pop = poplib.POP3("localhost", ports.pop3, timeout=10)
    pop.stls(context=ctx)
    pop.user("mafudge@syr.edu")
    pop.pass_("maillab")
    pop.quit()
    pop = poplib.POP3_SSL("localhost", ports.pop3s, context=ctx, timeout=10)
    pop.user("mafudge@syr.edu")
    pop.pass_("maillab")
    pop.quit()
    with pytest.raises(ssl.SSLCertVerificationError):       # smtp1's certificate does not name mx.gmail.com
        with socket.create_connection((HOST, ports.imaps), timeout=10) as raw:
            ctx.wrap_socket(raw, server_hostname="mx.gmail.com")


async def test_python_clients_verify_the_host_and_log_in_over_tls(lab):
    await asyncio.to_thread(python_clients, verifying(lab), lab.ports)


# ---- what the session says about its TLS ---------------------------------------------------

async def test_the_transcript_event_maillog_and_received_say_tls(lab):
    sub = lab.bus.subscribe(kinds=(TlsEstablished, SessionLine))

    def session() -> None:
        c = Line(lab.ports.smtp)
        c.line()
        c.send(b"EHLO client.example\r\n")
        assert b"250-STARTTLS\r\n" in c.reply()
        c.send(b"STARTTLS\r\n")
        assert c.line() == b"220 2.0.0 Ready to start TLS\r\n"
        c.tls(verifying(lab))
        for command in (b"EHLO client.example", b"MAIL FROM:<santa@northpole.org>", b"RCPT TO:<mafudge@syr.edu>",
                        b"DATA"):
            c.send(command + b"\r\n")
            assert c.reply()[-1][:1] in b"23", command
        c.send(b"Subject: over TLS\r\n\r\nsecret\r\n.\r\nQUIT\r\n")
        assert c.reply()[0].startswith(b"250 ")
        c.close()

    await asyncio.to_thread(session)
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "mafudge@syr.edu"))
    received = msgs[0]["Received"]
    assert "with ESMTPS id" in received and "(using TLSv1.3 with cipher TLS_" in received
    events = await sub.next_batch()
    tls = [e for e in events if isinstance(e, TlsEstablished)]
    assert len(tls) == 1 and tls[0].protocol == "TLSv1.3" and tls[0].bits >= 128 and not tls[0].implicit
    notes = [e.text for e in events if isinstance(e, SessionLine) and e.direction == "note"]
    assert f"(TLS 1.3 {tls[0].cipher} established)" in notes
    await async_wait_for(lambda: "Anonymous TLS connection established from smtp1.syr.edu[127.0.0.1]: TLSv1.3 "
                                 "with cipher" in maillog(lab))


async def test_a_tls_on_connect_session_says_so_from_its_start(lab):
    sub = lab.bus.subscribe(kinds=(SessionOpened, TlsEstablished))
    await asyncio.to_thread(ssl_ok, lab, lab.ports.imaps)
    events: list = []
    await async_wait_for(lambda: events.extend(sub.drain()) or len(events) >= 2)
    opened = next(e for e in events if isinstance(e, SessionOpened))
    up = next(e for e in events if isinstance(e, TlsEstablished))
    assert opened.protocol == "imaps"                  # the explain mode: the wire carried ciphertext
    assert up.implicit and up.session == opened.session
    assert Explainer(opened.protocol).tls


# ---- STARTTLS command injection (RFC 3207 §4.2, CVE-2011-0411) --------------------------
# In each test the injected command would change the session if it ran (the world allows
# plaintext logins, so a login pipelined after STARTTLS would log the session in): after the
# handshake there is no reply to it, and the session is as new.

@plaintext_world
async def test_smtp_command_pipelined_after_starttls_is_not_executed(lab):
    def session() -> None:
        c = Line(lab.ports.submission)
        c.line()
        c.send(b"EHLO x\r\n")
        c.reply()
        c.send(f"STARTTLS\r\nAUTH PLAIN {PLAIN}\r\n".encode())       # one packet
        assert c.line() == b"220 2.0.0 Ready to start TLS\r\n"
        c.tls(verifying(lab))
        c.send(b"MAIL FROM:<mafudge@syr.edu>\r\n")
        assert c.line() == b"503 5.5.1 Error: send HELO/EHLO first\r\n"    # state reset: no EHLO, no AUTH
        c.send(b"EHLO x\r\nMAIL FROM:<mafudge@syr.edu>\r\n")
        assert c.reply()[-1].startswith(b"250 ")
        assert c.line() == b"530 5.7.0 Authentication required\r\n"
        c.close()

    await asyncio.to_thread(session)


@plaintext_world
async def test_imap_command_pipelined_after_starttls_is_not_executed(lab):
    def session() -> None:
        c = Line(lab.ports.imap)
        c.line()
        c.send(b"a STARTTLS\r\nb LOGIN mafudge@syr.edu maillab\r\n")
        assert c.line() == b"a OK Begin TLS negotiation now\r\n"
        c.tls(verifying(lab))
        c.send(b"c SELECT INBOX\r\n")
        first = c.line()
        assert first.startswith(b"c BAD"), first          # no reply to b, and not authenticated: b never ran
        c.close()

    await asyncio.to_thread(session)


@plaintext_world
async def test_pop3_command_pipelined_after_stls_is_not_executed(lab):
    def session() -> None:
        c = Line(lab.ports.pop3)
        c.line()
        c.send(b"STLS\r\nUSER mafudge@syr.edu\r\n")
        assert c.line().startswith(b"+OK")
        c.tls(verifying(lab))
        c.send(b"PASS maillab\r\n")
        reply = c.line()
        assert reply.startswith(b"-ERR"), reply                          # no USER was given over TLS
        c.close()

    await asyncio.to_thread(session)


# ---- handshakes that fail ----------------------------------------------------------------

async def test_garbage_instead_of_a_client_hello_is_closed_and_logged(lab, caplog):
    loop = asyncio.get_running_loop()
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))

    def garbage() -> list[bytes]:
        out = []
        c = Line(lab.ports.imaps)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        out.append(c.rest())
        c.close()
        c = Line(lab.ports.smtp)
        c.line()
        c.send(b"EHLO x\r\n")
        c.reply()
        c.send(b"STARTTLS\r\n")
        assert c.line() == b"220 2.0.0 Ready to start TLS\r\n"
        c.send(b"EHLO not-a-client-hello\r\n")
        out.append(c.rest())
        c.close()
        return out

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        answers = await asyncio.to_thread(garbage)
        await async_wait_for(lambda: maillog(lab).count("SSL_accept error from") == 2)
    gc.collect()                    # a future whose error nobody took is reported when it is freed
    await asyncio.sleep(0.05)
    assert all(b"220" not in a and b"* OK" not in a for a in answers)
    log = maillog(lab)
    assert "imap[" in log and "smtpd[" in log
    assert "disconnect (smtp1.syr.edu/smtp/" in log and "TLS handshake failed" in log
    assert errors == [] and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    imap = await asyncio.to_thread(lambda: ssl_ok(lab, lab.ports.imaps))
    assert imap                                            # the listener lives on


async def test_a_silent_client_is_dropped_at_the_handshake_timeout(lab, monkeypatch):
    monkeypatch.setattr(tls, "HANDSHAKE_TIMEOUT", 0.5)

    def silent() -> tuple[bytes, float]:
        began = time.monotonic()
        c = Line(lab.ports.pop3s)
        c.sock.settimeout(10)
        try:
            said = c.sock.recv(100)            # nothing, then the server's close
        except ConnectionError:
            said = b""
        c.close()
        return said, time.monotonic() - began

    said, waited = await asyncio.to_thread(silent)
    assert said == b"" and waited < 5
    await async_wait_for(lambda: re.search(r"pop3\[\d+\]: SSL_accept error from unknown\[127.0.0.1\]: .*0\.5 sec",
                                           maillog(lab)))          # uvloop: "taking longer than 0.5 seconds"


def ssl_ok(lab, port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=10) as raw:
        with verifying(lab).wrap_socket(raw, server_hostname=NAME) as tls:
            return tls.recv(100).startswith(b"* OK")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_1_1_is_refused(lab):
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    try:
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as e:
        pytest.skip(f"this OpenSSL cannot offer TLS 1.1: {e}")

    def attempt() -> str:
        with socket.create_connection((HOST, lab.ports.imaps), timeout=10) as raw:
            try:
                old.wrap_socket(raw, server_hostname=NAME)
            except ssl.SSLError as e:
                return e.reason or str(e)
        return "established"

    why = await asyncio.to_thread(attempt)
    if why in ("NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE"):
        pytest.skip(f"this OpenSSL will not offer TLS 1.1 ({why})")
    assert why != "established"
    await async_wait_for(lambda: "SSL_accept error from unknown[127.0.0.1]: UNSUPPORTED_PROTOCOL" in maillog(lab))


# ---- logins before TLS (RFC 8314; the world's auth_over_plaintext) -------------------------

def plaintext_logins(ports, source: str | None = ELSEWHERE) -> dict[str, bytes]:
    """What each protocol answers a login before TLS (and SMTP's EHLO, IMAP's and POP3's
    capabilities), to a client at `source` (None: the server's own address, 127.0.0.1)."""
    out = {}
    c = Line(ports.submission, source=source)
    c.line()
    c.send(b"EHLO x\r\n")
    out["ehlo"] = b"".join(c.reply())
    c.send(f"AUTH PLAIN {PLAIN}\r\n".encode())
    out["smtp"] = c.line()
    c.close()
    c = Line(ports.imap, source=source)
    out["imap greeting"] = c.line()
    c.send(b"a LOGIN mafudge@syr.edu maillab\r\n")
    out["imap"] = c.line()
    c.send(f"b AUTHENTICATE PLAIN {PLAIN}\r\n".encode())
    out["imap authenticate"] = c.line()
    c.close()
    c = Line(ports.pop3, source=source)
    c.line()
    c.send(b"CAPA\r\n")
    capa = [c.line()]
    while capa[-1] != b".\r\n":
        capa.append(c.line())
    out["capa"] = b"".join(capa)
    c.send(b"USER mafudge@syr.edu\r\n")
    out["pop3"] = c.line()
    c.send(f"AUTH PLAIN {PLAIN}\r\n".encode())
    out["pop3 auth"] = c.line()
    c.close()
    return out


async def test_logins_before_tls_are_refused_by_default(lab):
    out = await asyncio.to_thread(plaintext_logins, lab.ports)
    assert b"AUTH" not in out["ehlo"] and b"STARTTLS" in out["ehlo"]
    assert out["smtp"] == b"530 5.7.0 Must issue a STARTTLS command first\r\n"
    assert b"LOGINDISABLED" in out["imap greeting"] and b"AUTH=" not in out["imap greeting"]
    refused = b"NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"
    assert out["imap"] == b"a " + refused and out["imap authenticate"] == b"b " + refused
    assert b"USER" not in out["capa"] and b"SASL" not in out["capa"] and b"STLS" in out["capa"]
    refused = b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"
    assert out["pop3"] == out["pop3 auth"] == refused


async def test_imap_and_pop3_count_a_client_on_the_servers_own_address_as_secure(lab):
    # Dovecot's disable_plaintext_auth: no wire between two machines carries such a session;
    # submission has no such exemption (Postfix's smtpd_tls_auth_only)
    out = await asyncio.to_thread(plaintext_logins, lab.ports, None)
    assert out["smtp"] == b"530 5.7.0 Must issue a STARTTLS command first\r\n"
    assert b"AUTH=PLAIN" in out["imap greeting"] and b"LOGINDISABLED" not in out["imap greeting"]
    assert out["imap"].startswith(b"a OK")
    assert b"USER" in out["capa"] and out["pop3"].startswith(b"+OK")
    assert await asyncio.to_thread(library_logins, lab.ports) == ("OK", b"+OK maildrop has 0 messages (0 octets)")


def library_logins(ports) -> tuple[str, bytes]:
    """imaplib's and poplib's logins in plaintext to `localhost`, as a student's first script does."""
    with imaplib.IMAP4("localhost", ports.imap, timeout=10) as imap:
        imap.login("mafudge@syr.edu", "maillab")
        selected = imap.select("INBOX")[0]
    pop = poplib.POP3("localhost", ports.pop3, timeout=10)
    pop.user("mafudge@syr.edu")
    answer = pop.pass_("maillab")
    pop.quit()
    return selected, answer


@plaintext_world
async def test_logins_before_tls_work_when_the_world_allows_them(lab):
    out = await asyncio.to_thread(plaintext_logins, lab.ports)
    assert b"250-AUTH PLAIN LOGIN" in out["ehlo"]
    assert out["smtp"] == b"235 2.7.0 Authentication successful\r\n"
    assert b"AUTH=PLAIN" in out["imap greeting"] and b"LOGINDISABLED" not in out["imap greeting"]
    assert out["imap"].startswith(b"a OK")
    assert b"USER" in out["capa"] and out["pop3"].startswith(b"+OK")
