"""Hypothesis properties of the sans-IO SMTP server connection (issue 15 item 8).

Any bytes, in any chunking, fed the way the adapter feeds them (after NEED_DATA, EOF last):
- never an exception: every event is one the connection may emit, every answer it accepts;
- the output is well-formed replies only (`ddd-text` / `ddd text` lines, CRLF), ending the
  session with a clean Closed;
- the RFC 5321 §4.1.4 order holds in the events: no Mail before an accepted Helo, no Rcpt
  outside a transaction, no message without an accepted recipient;
- the same replies and events whatever the chunking.

Bounded for CI; a longer run: `MAILLAB_FUZZ_EXAMPLES=20000 python3 -m pytest tests/test_smtp_fuzz.py`.
"""

from __future__ import annotations

import os
import re
import tempfile
import zlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maillab.base.sansio import NEED_DATA, PAUSED, Authenticate, Closed
from maillab.smtp.protocol import Helo, Mail, MessageEnd, Rcpt, SmtpConnection

EXAMPLES = int(os.environ.get("MAILLAB_FUZZ_EXAMPLES", "300"))
SPILL = Path(tempfile.mkdtemp(prefix="maillab-fuzz-"))
REPLY_LINE = re.compile(rb"[2-5]\d\d([ -][^\r\n]*)?\r\n")

# Pieces a client might send, well-formed or not, and noise.
TOKENS = [b"EHLO client.example\r\n", b"HELO x\n", b"MAIL FROM:<santa@northpole.org>\r\n",
          b"MAIL FROM:<> SIZE=10 BODY=8BITMIME\r\n", b"MAIL FROM:<a@b> SMTPUTF8 RET=HDRS ENVID=x+2B\r\n",
          "MAIL FROM:<nöel@northpole.org>\r\n".encode(), b"RCPT TO:<mafudge@syr.edu>\r\n",
          b"RCPT TO:<postmaster>\r\n", b"RCPT TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b\r\n",
          b"RCPT TO:<x@\r\n", b"DATA\r\n", b"DATA\n", b"Subject: hi\r\n\r\nbody\r\n", b"..stuffed\r\n",
          b".\r\n", b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"BDAT 5\r\n", b"BDAT 0 LAST\r\n", b"BDAT 3 LAST\r\nabc",
          b"BDAT x\r\n", b"AUTH PLAIN AG1hZnVkZ2VAc3lyLmVkdQBtYWlsbGFi\r\n", b"AUTH LOGIN\r\n", b"dXNlcg==\r\n",
          b"*\r\n", b"AUTH PLAIN\r\n", b"=\r\n", b"STARTTLS\r\n", b"RSET\r\n", b"NOOP\r\n", b"VRFY x\r\n",
          b"HELP\r\n", b"QUIT\r\n", b"\x00\r\n", b"\xff\xfe\r\n", b"\r\n", b"\r", b"\n",
          b"A" * 600 + b"\r\n", b"B" * 13000]
data = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=40)), max_size=30).map(b"".join)


class Adapter:
    """Answers every event as a server would, deterministically by its content; checks the
    RFC 5321 §4.1.4 order as it goes."""

    def __init__(self) -> None:
        self.conn = SmtpConnection("smtp1.syr.edu", client_ip="127.0.0.9", max_size=4096, auth=True,
                                   spill_folder=SPILL)
        self.conn.greet()
        self.events: list[str] = []
        self.out = bytearray(self.conn.data_to_send())
        self.closed: Closed | None = None
        self.helo = self.mail = False
        self.rcpts = 0

    def _refuse(self, text: str) -> bool:
        return zlib.crc32(text.encode("utf-8", "surrogateescape")) % 4 == 0

    def drive(self) -> None:
        """Answer events until the connection wants bytes (or is closed)."""
        conn = self.conn
        while self.closed is None:
            ev = conn.next_event()
            if ev is NEED_DATA:
                break
            assert ev is not PAUSED, "PAUSED with no event waiting for an answer"
            self.events.append(repr(ev) if not isinstance(ev, MessageEnd) else
                               f"MessageEnd({ev.envelope!r}, {ev.size})")
            if isinstance(ev, Helo):
                if self._refuse(ev.name):
                    conn.reject("550 5.7.1 not you")
                else:
                    conn.accept()
                    self.helo, self.mail, self.rcpts = True, False, 0
            elif isinstance(ev, Mail):
                assert self.helo and not self.mail, "MAIL outside RFC 5321 §4.1.4's order"
                if self._refuse(ev.sender):
                    conn.reject("553 5.7.1 sender refused")
                else:
                    conn.accept()
                    self.mail = True
            elif isinstance(ev, Rcpt):
                assert self.mail, "RCPT without MAIL"
                if self._refuse(ev.address):
                    conn.reject("550 5.1.1 no such user")
                else:
                    conn.accept()
                    self.rcpts += 1
            elif isinstance(ev, MessageEnd):
                assert self.mail and self.rcpts, "a message with no accepted recipient"
                if ev.spilled is not None:
                    ev.spilled.seek(0)
                    assert len(ev.spilled.read()) == ev.size
                else:
                    assert len(ev.content) == ev.size
                conn.accept("Ok: queued as 4F3A2B1C9D")
                self.mail, self.rcpts = False, 0
            elif isinstance(ev, Authenticate):
                conn.login_failed()
            elif isinstance(ev, Closed):
                self.closed = ev
            else:
                raise AssertionError(f"unexpected event {ev!r}")
            self.out += conn.data_to_send()
        self.out += conn.data_to_send()
        # a transaction the connection reset (RSET, a new HELO, a refused message) is seen
        # by the next Mail being legal again: follow the connection's own state
        if conn.mail is None:
            self.mail, self.rcpts = False, 0

    def feed(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.drive()
            if self.closed is not None:
                return
            if chunk:
                self.conn.receive_data(chunk)
        self.drive()
        if self.closed is None:
            self.conn.receive_data(b"")
            self.drive()


def _chunks(blob: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(blob) + 1) for c in cuts})
    return [blob[a:b] for a, b in zip([0, *points], [*points, len(blob)])]


def _well_formed(out: bytes) -> None:
    pos = 0
    while pos < len(out):
        m = REPLY_LINE.match(out, pos)
        assert m is not None, f"not a reply line at {pos}: {out[pos:pos + 80]!r}"
        pos = m.end()


@given(blob=data, cuts=st.lists(st.integers(0, 1 << 16), max_size=12))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_bytes_in_any_chunking_get_replies_then_a_clean_close(blob, cuts):
    whole, pieces = Adapter(), Adapter()
    whole.feed([blob])
    pieces.feed(_chunks(blob, cuts))
    for a in (whole, pieces):
        assert a.closed is not None, "the session did not end at the client's EOF"
        _well_formed(bytes(a.out))
    assert pieces.out == whole.out
    assert pieces.events == whole.events


@given(blob=data)
@settings(max_examples=EXAMPLES // 3, deadline=None)
def test_byte_at_a_time_is_the_same_session(blob):
    whole, bytewise = Adapter(), Adapter()
    whole.feed([blob])
    bytewise.feed([blob[i:i + 1] for i in range(len(blob))])
    assert bytewise.out == whole.out
    assert bytewise.events == whole.events
