"""The lab's SMTP server beside aiosmtpd's, fed the same byte scripts: replies compared by code.

aiosmtpd (a test dependency only) is the differential oracle: a mature asyncio SMTP server
that follows RFC 5321 closely.  Each script is typed over a real socket to an aiosmtpd
Controller whose handler accepts everything, and to smtp1.syr.edu of a running lab; every
reply's code must match, except the differences listed in `INTENDED`, each with the RFC
reason the lab answers otherwise.  A listed difference that no longer happens fails too, so
the list stays the truth.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiosmtpd.controller import Controller

from netutil import free_port

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

CRLF = b"\r\n"
REPLY_WAIT = 3.0           # seconds a server has to answer a step (both answer in milliseconds)
NO_REPLY, CLOSED = -1, 0   # what `_run` records for a step not answered in time, or after the server closed

# Each step is one write and one reply (a multi-line reply counts once); CRLF is added to a
# step that does not end in LF.
SCRIPTS: dict[str, list[bytes]] = {
    "transaction": [b"EHLO client.example", b"MAIL FROM:<santa@northpole.org>", b"RCPT TO:<mafudge@syr.edu>",
                    b"DATA", b"Subject: hi\r\n\r\nHo ho ho.\r\n.", b"QUIT"],
    "helo transaction": [b"HELO client.example", b"MAIL FROM:<santa@northpole.org>",
                         b"RCPT TO:<mafudge@syr.edu>", b"DATA", b"Subject: hi\r\n\r\n..dot-stuffed\r\n.", b"QUIT"],
    "null sender": [b"EHLO c", b"MAIL FROM:<>", b"RCPT TO:<mafudge@syr.edu>", b"RSET", b"QUIT"],
    "order": [b"MAIL FROM:<santa@northpole.org>", b"EHLO c", b"RCPT TO:<mafudge@syr.edu>", b"DATA",
              b"MAIL FROM:<santa@northpole.org>", b"MAIL FROM:<santa@northpole.org>", b"DATA", b"QUIT"],
    "rset and noop": [b"EHLO c", b"NOOP", b"MAIL FROM:<santa@northpole.org>", b"RSET",
                      b"RCPT TO:<mafudge@syr.edu>", b"NOOP ignored argument", b"QUIT"],
    "syntax": [b"EHLO c", b"FOO", b"MAIL santa@northpole.org", b"MAIL FROM:", b"MAIL FROM:<santa@northpole.org> BOGUS=1",
               b"MAIL FROM:<santa@northpole.org>", b"RCPT mafudge@syr.edu", b"RCPT TO:", b"QUIT"],
    "no ehlo name": [b"EHLO", b"HELO", b"EHLO c", b"QUIT"],
    "case and spaces": [b"ehlo c", b"mail from:<santa@northpole.org>", b"rcpt to:<mafudge@syr.edu>",
                        b"rset", b"quit"],
    "size": [b"EHLO c", b"MAIL FROM:<santa@northpole.org> SIZE=100", b"RSET",
             b"MAIL FROM:<santa@northpole.org> SIZE=999999999999", b"QUIT"],
    "8bitmime": [b"EHLO c", b"MAIL FROM:<santa@northpole.org> BODY=8BITMIME", b"RSET",
                 b"MAIL FROM:<santa@northpole.org> BODY=7BIT", b"RSET",
                 b"MAIL FROM:<santa@northpole.org> BODY=BINARY", b"QUIT"],
    "smtputf8": [b"EHLO c", "MAIL FROM:<nöel@northpole.org> SMTPUTF8".encode(), b"QUIT"],
    "overlong line": [b"EHLO c", b"NOOP " + b"x" * 2000, b"QUIT"],
    "vrfy expn help": [b"EHLO c", b"VRFY mafudge", b"EXPN staff", b"HELP", b"QUIT"],
    "data without recipients": [b"EHLO c", b"MAIL FROM:<santa@northpole.org>", b"DATA", b"QUIT"],
    **{f"address {a.decode()}": [b"EHLO c", b"MAIL FROM:" + a, b"RCPT TO:<postmaster>", b"QUIT"]
       for a in (b"<santa@northpole.org", b"<x@", b"<a@[", b'<"quoted local"@northpole.org>',
                 b"<@relay.example:santa@northpole.org>", b"<santa@[127.0.0.1]>", b"santa@northpole.org")},
    **{f"smuggling {end!r}": [b"EHLO c", b"MAIL FROM:<santa@northpole.org>", b"RCPT TO:<mafudge@syr.edu>", b"DATA",
                              b"Subject: one\r\n\r\nfirst" + end + b"NOOP\r\n.", b"NOOP", b"QUIT"]
       for end in (b"\n.\n", b"\n.\r\n", b"\r\n.\n")},
    "typed in nc": [b"EHLO c\n", b"MAIL FROM:<santa@northpole.org>\n", b"RCPT TO:<mafudge@syr.edu>\n",
                    b"DATA\n", b"Subject: typed\n\nin nc\n.\n", b"QUIT\n"],
    "bdat": [b"EHLO c", b"MAIL FROM:<santa@northpole.org>", b"RCPT TO:<mafudge@syr.edu>",
             b"BDAT 17 LAST\r\nSubject: hi\r\n\r\nx", b"QUIT"],
    "auth": [b"EHLO c", b"AUTH PLAIN AG1hZnVkZ2VAc3lyLmVkdQB3cm9uZw==", b"AUTH CRAM-MD5", b"QUIT"],
    "pipelined group": [b"EHLO c", b"MAIL FROM:<santa@northpole.org>\r\nRCPT TO:<mafudge@syr.edu>\r\nRSET",
                        b"", b"", b"QUIT"],
}

# (script, step) -> (aiosmtpd's code, the lab's code, why the lab answers so)
_NC = ("the lab takes a session typed in nc, every line ending in a bare LF, as a course does "
       "(world setting smtp_line_endings = lenient, the default; RFC 5321 §2.3.8 wants CRLF, and "
       "`strict` and `pedantic` refuse it); aiosmtpd waits for a CRLF that never comes")
_UNKNOWN_VS_SYNTAX = ("RFC 5321 §4.2.2, §4.3.2: 500 says the command is not recognised; MAIL is, its "
                      "argument is broken: 501 (aiosmtpd's address parser raised IndexError here)")
INTENDED: dict[tuple[str, int], tuple[int, int, str]] = {
    ("vrfy expn help", 4): (250, 214, "RFC 5321 §4.1.1.8, §4.2.2: HELP is answered 211 or 214 (help message)"),
    ("address <santa@northpole.org", 2): (250, 501, "RFC 5321 §4.1.2: a Path is \"<\" ... \">\"; one without "
                                          "its \">\" is a syntax error, not a sender to accept"),
    ("address <santa@northpole.org", 3): (250, 503, "follows: with MAIL refused, RCPT is out of sequence "
                                          "(RFC 5321 §4.1.4)"),
    ("address <x@", 2): (500, 501, _UNKNOWN_VS_SYNTAX),
    ("address <a@[", 2): (500, 501, _UNKNOWN_VS_SYNTAX),
    ("typed in nc", 5): (NO_REPLY, 250, _NC),
    ("typed in nc", 6): (NO_REPLY, 221, _NC),
    ("bdat", 4): (500, 250, "RFC 3030: the lab offers CHUNKING, aiosmtpd has no BDAT"),
}


class _Sink:
    async def handle_DATA(self, server, session, envelope) -> str:
        return "250 OK"


def _refuse_all(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult
    return AuthResult(success=False, handled=False)


def _run(port: int, steps: list[bytes]) -> list[int]:
    """The code of the banner, then of each step's reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=REPLY_WAIT) as sock:
        buf = bytearray()

        def reply() -> int:
            while True:
                while b"\n" not in buf:
                    try:
                        chunk = sock.recv(65536)
                    except TimeoutError:
                        return NO_REPLY
                    if not chunk:
                        return CLOSED
                    buf.extend(chunk)
                end = buf.index(b"\n") + 1
                line = bytes(buf[:end])
                del buf[:end]
                if line[3:4] != b"-":
                    return int(line[:3])
        codes = [reply()]
        for step in steps:
            sock.sendall(step if step.endswith(b"\n") else step + CRLF)
            codes.append(reply())
        return codes


@pytest.fixture(scope="module")
def oracle():
    port = free_port()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port, server_hostname="oracle.example",
                            enable_SMTPUTF8=True, data_size_limit=10 * 1024 * 1024,
                            auth_require_tls=False, authenticator=_refuse_all)
    controller.start()
    yield port
    controller.stop()


async def test_the_lab_answers_as_aiosmtpd_does_but_for_the_listed_differences(lab, oracle):
    seen: dict[tuple[str, int], tuple[int, int]] = {}
    unexpected: list[str] = []
    for name, steps in SCRIPTS.items():
        theirs = await asyncio.to_thread(_run, oracle, steps)
        ours = await asyncio.to_thread(_run, lab.ports.smtp, steps)
        for i, (a, b) in enumerate(zip(theirs, ours)):
            if a == b:
                continue
            seen[(name, i)] = (a, b)
            if (name, i) not in INTENDED or INTENDED[(name, i)][:2] != (a, b):
                what = "banner" if i == 0 else steps[i - 1][:60].decode("utf-8", "replace")
                unexpected.append(f"{name} step {i} ({what!r}): aiosmtpd {a}, lab {b}")
    gone = [f"{k}: {v[2]}" for k, v in INTENDED.items() if k not in seen]
    assert not unexpected, "differences with no RFC reason listed:\n" + "\n".join(unexpected)
    assert not gone, "listed differences that no longer happen:\n" + "\n".join(gone)
