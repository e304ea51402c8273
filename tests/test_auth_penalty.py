"""Issue 13: login sprays are held in check — a failed login costs its client address a growing
delay (Dovecot's auth penalty) that only its own session waits, and a session with too many
errors is dropped (Postfix's smtpd_hard_error_limit), on SMTP, IMAP and POP3 alike."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import poplib
import smtplib
import threading

import dns.asyncquery
import dns.message
import pytest

from maillab.base.events import Notice
from maillab.lab.supervisor import DNS_ADDRESS
from maillab.net.authguard import AUTH_FAILURE_LIMIT, HARD_ERROR_LIMIT, AuthGuard

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

USER = "mafudge@syr.edu"
SYR = "127.0.0.1"                  # smtp1.syr.edu: syr.edu's mailboxes, submission, IMAP, POP3
SPRAY = 1000


def plain(login: str, password: str) -> str:
    return base64.b64encode(f"\0{login}\0{password}".encode()).decode()


def quick_penalty(lab) -> None:
    """The penalty's shape stays, its seconds shrink: a spray test must not wait 15 s a line."""
    lab.ctx.auth_guard.base_delay, lab.ctx.auth_guard.max_delay = 0.001, 0.004


def penalties(sub) -> list[str]:
    return [e.text for e in sub.drain() if isinstance(e, Notice) and e.text.startswith("auth penalty:")]


# ---- the guard itself, on a fake clock ------------------------------------------------------

def test_penalty_doubles_per_failure_up_to_the_cap():
    guard = AuthGuard(base_delay=1.0, max_delay=15.0)
    delays = [guard.failed("10.0.0.1", now=100.0 + i)[1] for i in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    assert guard.failures("10.0.0.1", now=106.0) == 6
    assert guard.failed("10.0.0.2", now=106.0) == (1, 1.0)        # per address


def test_success_resets_the_penalty():
    guard = AuthGuard(base_delay=1.0)
    for i in range(4):
        guard.failed("10.0.0.1", now=float(i))
    guard.succeeded("10.0.0.1")
    assert guard.failures("10.0.0.1", now=5.0) == 0
    assert guard.failed("10.0.0.1", now=5.0) == (1, 1.0)


def test_penalty_decays_after_quiet_time():
    guard = AuthGuard(base_delay=1.0, forget_after=300.0)
    guard.failed("10.0.0.1", now=0.0)
    guard.failed("10.0.0.1", now=10.0)
    assert guard.failures("10.0.0.1", now=309.0) == 2
    assert guard.failures("10.0.0.1", now=310.0) == 0
    assert guard.failed("10.0.0.1", now=310.0) == (1, 1.0)


def test_memory_is_bounded_oldest_failure_forgotten_first():
    guard = AuthGuard(max_addresses=3)
    for i, ip in enumerate(("10.0.0.1", "10.0.0.2", "10.0.0.3")):
        guard.failed(ip, now=float(i))
    guard.failed("10.0.0.1", now=3.0)          # failed again: now the newest
    guard.failed("10.0.0.4", now=4.0)
    assert len(guard) == 3
    assert guard.failures("10.0.0.2", now=4.0) == 0
    assert guard.failures("10.0.0.1", now=4.0) == 2


# ---- sprays over real sockets ---------------------------------------------------------------

async def test_smtp_bad_auth_plain_spray_is_dropped_with_421(lab):
    quick_penalty(lab)
    sub = lab.ctx.bus.subscribe(kinds=(Notice,))

    def spray() -> tuple[list[int], tuple[int, bytes]]:
        with smtplib.SMTP(SYR, lab.ports.submission, timeout=30) as s:
            s.ehlo("sprayer.example")
            codes = []
            for _ in range(SPRAY):
                code, text = s.docmd("AUTH", f"PLAIN {plain(USER, 'wrong')}")
                if code == 421:
                    with pytest.raises(smtplib.SMTPServerDisconnected):
                        s.docmd("NOOP")
                    return codes, (code, text)
                codes.append(code)
            return codes, (0, b"never dropped")

    codes, last = await asyncio.to_thread(spray)
    assert codes == [535] * AUTH_FAILURE_LIMIT          # the last refusal, then the 421
    assert last == (421, b"4.7.0 Too many errors, closing connection")
    shown = penalties(sub)
    assert len(shown) == AUTH_FAILURE_LIMIT and "failures=10, delay=0.004s" in shown[-1]


async def test_smtp_malformed_auth_spray_is_dropped_after_the_hard_error_limit(lab):
    def spray() -> tuple[list[int], tuple[int, bytes]]:
        with smtplib.SMTP(SYR, lab.ports.submission, timeout=30) as s:
            s.ehlo("sprayer.example")
            codes = []
            for _ in range(SPRAY):
                code, text = s.docmd("AUTH", "PLAIN !!!not-base64!!!")
                if code == 421:
                    return codes, (code, text)
                codes.append(code)
            return codes, (0, b"never dropped")

    codes, last = await asyncio.to_thread(spray)
    assert len(codes) == HARD_ERROR_LIMIT and all(c >= 500 for c in codes)
    assert last == (421, b"4.7.0 Too many errors, closing connection")


async def test_smtp_errors_before_an_accepted_message_are_forgiven(lab):
    """A relay whose messages each have some refused recipients is no sprayer (Postfix resets
    its error count once a message is delivered)."""
    bad = HARD_ERROR_LIMIT - 5

    def session() -> tuple[list[int], int]:
        with smtplib.SMTP(SYR, lab.ports.smtp, timeout=30) as s:
            s.ehlo("relay.example")
            codes = []
            for _ in range(2):
                s.mail("santa@northpole.org")
                codes += [s.rcpt(f"user{i}@gmail.com")[0] for i in range(bad)]     # relay denied
                codes.append(s.rcpt(USER)[0])
                codes.append(s.data(b"Subject: hi\r\n\r\nhello\r\n")[0])
            return codes, s.noop()[0]

    codes, noop = await asyncio.to_thread(session)
    assert codes == ([554] * bad + [250, 250]) * 2 and noop == 250


async def test_imap_login_spray_is_penalised_and_dropped_with_bye(lab):
    quick_penalty(lab)
    sub = lab.ctx.bus.subscribe(kinds=(Notice,))

    def spray() -> tuple[int, str]:
        m = imaplib.IMAP4(SYR, lab.ports.imap, timeout=30)
        refused = 0
        try:
            for _ in range(SPRAY):
                try:
                    m.login(USER, "wrong")
                except imaplib.IMAP4.abort as e:
                    return refused, str(e)
                except imaplib.IMAP4.error:
                    refused += 1
            return refused, "never dropped"
        finally:
            m.shutdown()

    refused, bye = await asyncio.to_thread(spray)
    assert refused == 3 and bye.endswith("Too many failed logins")      # three NOs, then BYE
    assert [t.split(",")[1] for t in penalties(sub)] == [" failures=1", " failures=2", " failures=3"]


async def test_imap_malformed_plain_spray_is_dropped_with_bye(lab):
    def spray() -> int:
        m = imaplib.IMAP4(SYR, lab.ports.imap, timeout=30)
        try:
            for i in range(SPRAY):
                try:     # SASL-IR: base64 of "no-nuls", not authzid NUL authcid NUL passwd
                    m._simple_command("AUTHENTICATE", "PLAIN", base64.b64encode(b"no-nuls").decode())
                except imaplib.IMAP4.abort:
                    return i
                except imaplib.IMAP4.error:
                    pass
            return SPRAY
        finally:
            m.shutdown()

    assert await asyncio.to_thread(spray) == 3        # three NOs (failed logins), then BYE


async def test_pop3_pass_spray_is_penalised_and_dropped(lab):
    quick_penalty(lab)
    sub = lab.ctx.bus.subscribe(kinds=(Notice,))

    def spray() -> list[bytes]:
        p = poplib.POP3(SYR, lab.ports.pop3, timeout=30)
        replies = []
        try:
            for _ in range(SPRAY):
                p.user(USER)
                try:
                    p.pass_("wrong")
                except poplib.error_proto as e:
                    replies.append(e.args[0])
                    if b"closing the connection" in e.args[0]:
                        assert p.sock.recv(1) == b""       # and closed
                        return replies
            return replies
        finally:
            p.close()

    replies = await asyncio.to_thread(spray)
    assert len(replies) == 3 and replies[-1].startswith(b"-ERR [AUTH]")
    assert len(penalties(sub)) == 3


async def test_pop3_unsupported_auth_spray_is_dropped_after_the_hard_error_limit(lab):
    def spray() -> list[bytes]:
        p = poplib.POP3(SYR, lab.ports.pop3, timeout=30)
        replies = []
        try:
            for _ in range(SPRAY):
                try:
                    p._shortcmd("AUTH CRAM-MD5")
                except poplib.error_proto as e:
                    replies.append(e.args[0])
                    if b"too many errors" in e.args[0]:
                        assert p.sock.recv(1) == b""
                        return replies
            return replies
        finally:
            p.close()

    replies = await asyncio.to_thread(spray)
    assert len(replies) == HARD_ERROR_LIMIT
    assert replies[-1] == (b"-ERR unsupported SASL mechanism CRAM-MD5 (try PLAIN, LOGIN, SCRAM-SHA-256); too many errors, "
                           b"closing the connection")


# ---- the penalty holds one session, not the lab -----------------------------------------------

async def test_a_penalised_client_holds_up_nobody_else(lab):
    lab.ctx.auth_guard.base_delay = lab.ctx.auth_guard.max_delay = 120.0    # far longer than the test
    sub = lab.ctx.bus.subscribe(kinds=(Notice,))
    answered = threading.Event()
    holder: list[smtplib.SMTP] = []

    def bad_login() -> None:
        s = smtplib.SMTP(SYR, lab.ports.submission, timeout=60)
        holder.append(s)
        s.ehlo("sprayer.example")
        try:
            s.login(USER, "wrong")
        except (smtplib.SMTPException, OSError):
            pass
        answered.set()

    first = asyncio.create_task(asyncio.to_thread(bad_login))
    async with asyncio.timeout(30):
        while not any(isinstance(e, Notice) and e.text.startswith("auth penalty:") for e in await sub.next_batch()):
            pass

    def others() -> tuple[bytes, bytes]:
        with smtplib.SMTP("127.0.0.2", lab.ports.smtp, timeout=10) as s:
            banner = s.ehlo("other.example")[1]
        m = imaplib.IMAP4(SYR, lab.ports.imap, timeout=10)
        greeting = m.welcome
        m.logout()
        return banner, greeting

    banner, greeting = await asyncio.to_thread(others)
    answer = await dns.asyncquery.udp(dns.message.make_query("syr.edu", "MX"), DNS_ADDRESS, timeout=10,
                                      port=lab.ports.dns)
    assert banner and greeting.startswith(b"* OK") and answer.answer
    assert not answered.is_set(), "the penalised client was answered before the others"
    holder[0].sock.shutdown(2)                   # end the first client; its session sleeps on
    async with asyncio.timeout(30):
        await first
