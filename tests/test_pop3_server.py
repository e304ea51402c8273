"""POP3 against a running lab over loopback: poplib, curl and a typist with raw sockets.

Mail arrives the way it does for a student: over SMTP to smtp1.syr.edu, through
the queue and the MDA into the Maildir; then it is read back over POP3.
Blocking clients run in threads, since the lab runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import poplib
import smtplib
import socket
import subprocess

import pytest

from maillab.base.events import SessionClosed, SessionLine, SessionOpened
from maillab.pop3.server import Pop3Server
from maillab.store import SEEN

from conftest import async_wait_for
from netutil import require_tool

# about the POP3 server, not TLS (tests/test_tls_servers.py): logins over plaintext, as the
# eavesdropping lesson's world allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

USER = "mafudge@syr.edu"
SYR = "127.0.0.1"                    # smtp1.syr.edu keeps syr.edu's mailboxes
BODY = (b"From: santa@northpole.org\r\nTo: mafudge@syr.edu\r\nSubject: list %d\r\n\r\n"
        b"Dear Mr Fudge,\r\n.a line that starts with a dot\r\n..and one with two\r\nho ho ho\r\n")


async def deliver(lab, count: int = 1, to: str = USER, host: str = SYR) -> list[bytes]:
    """Send `count` messages over SMTP and wait until they are all in the store."""
    folder = lab.ctx.store.user(to).folder("INBOX")
    before = folder.exists
    sent = [BODY % i for i in range(1, count + 1)]

    def send() -> None:
        with smtplib.SMTP(host, lab.ports.smtp, timeout=10) as s:
            for data in sent:
                s.sendmail("santa@northpole.org", [to], data)
    await asyncio.to_thread(send)

    def arrived() -> bool:
        folder.refresh()
        return folder.exists >= before + count
    assert await async_wait_for(arrived)
    return sent


def pop(lab, address: str = SYR) -> poplib.POP3:
    return poplib.POP3(address, lab.ports.pop3, timeout=10)


def login(lab, user: str = USER, password: str = "maillab", address: str = SYR) -> poplib.POP3:
    p = pop(lab, address)
    p.user(user)
    p.pass_(password)
    return p


async def test_poplib_reads_what_smtp_delivered(lab):
    sent = await deliver(lab, 2)
    folder = lab.ctx.store.user(USER).folder("INBOX")
    stored = [folder.read(m.uid, crlf=True) for m in folder.messages()]
    keys = [m.key.split(",")[0] for m in folder.messages()]    # the Maildir unique names

    def session():
        p = pop(lab)
        out = {"welcome": p.getwelcome()}
        out["user"] = p.user(USER)
        out["pass"] = p.pass_("maillab")
        out["stat"] = p.stat()
        out["list"] = p.list()
        out["uidl"] = p.uidl()
        out["uidl1"] = p.uidl(1)
        out["retr"] = [p.retr(n) for n in (1, 2)]
        out["top"] = p.top(1, 1)
        out["quit"] = p.quit()
        return out

    out = await asyncio.to_thread(session)
    assert out["welcome"] == b"+OK smtp1.syr.edu POP3 maillab ready"
    assert out["pass"] == b"+OK maildrop has 2 messages (%d octets)" % sum(map(len, stored))
    assert out["stat"] == (2, sum(map(len, stored)))
    assert out["list"][1] == [b"%d %d" % (i, len(s)) for i, s in enumerate(stored, 1)]
    assert out["uidl"][1] == [b"%d %s" % (i, k.encode()) for i, k in enumerate(keys, 1)]
    assert out["uidl1"] == b"+OK 1 " + keys[0].encode()
    for (resp, lines, octets), want, body in zip(out["retr"], stored, sent):
        assert resp == b"+OK %d octets" % len(want)
        got = b"\r\n".join(lines) + b"\r\n"           # poplib has undone the dot-stuffing
        assert got == want
        assert got.endswith(body)                        # the sender's bytes, after the trace headers
        assert got.startswith(b"Return-Path: <santa@northpole.org>\r\n")
    top = b"\r\n".join(out["top"][1]) + b"\r\n"
    header = stored[0].split(b"\r\n\r\n", 1)[0]
    assert top == header + b"\r\n\r\nDear Mr Fudge,\r\n"
    assert out["quit"].startswith(b"+OK smtp1.syr.edu POP3 maillab signing off (2 messages left)")
    # RETR marks the messages \Seen at QUIT (what IMAP then shows)
    assert all(SEEN in m.flags for m in folder.messages())


async def test_uidl_is_stable_across_sessions_and_is_the_maildir_unique_name(lab):
    await deliver(lab, 3)
    keys = [m.key.split(",")[0].encode() for m in lab.ctx.store.user(USER).folder("INBOX").messages()]

    def uidls():
        p = login(lab)
        listing = p.uidl()[1]
        p.quit()
        return listing
    first = await asyncio.to_thread(uidls)
    await deliver(lab, 1)                                 # a new message changes nothing for the old ones
    second = await asyncio.to_thread(uidls)
    assert first == [b"%d %s" % (i, k) for i, k in enumerate(keys, 1)]
    assert second[:3] == first and len(second) == 4


async def test_dele_takes_effect_at_quit_and_rset_undoes(lab):
    await deliver(lab, 3)
    folder = lab.ctx.store.user(USER).folder("INBOX")
    uids = [m.uid for m in folder.messages()]

    def rset_session():
        p = login(lab)
        p.dele(1)
        p.dele(2)
        out = (p.stat(), p.rset(), p.stat())
        p.quit()
        return out
    before, rset, after = await asyncio.to_thread(rset_session)
    assert before[0] == 1 and after[0] == 3
    assert rset.startswith(b"+OK maildrop has 3 messages")
    assert [m.uid for m in folder.messages()] == uids

    def dele_session():
        p = login(lab)
        p.dele(2)
        during = [m.uid for m in folder.messages()]       # read from this thread: the store is thread-safe
        listing = p.list()[1]
        return p, during, listing
    p, during, listing = await asyncio.to_thread(dele_session)
    assert during == uids                                # marked, not removed
    assert [line.split()[0] for line in listing] == [b"1", b"3"]
    assert (await asyncio.to_thread(p.quit)).endswith(b"(2 messages left)")
    assert [m.uid for m in folder.messages()] == [uids[0], uids[2]]
    assert not lab.ctx.store.maildrop_locked(USER)


async def test_a_dropped_connection_deletes_nothing(lab):
    await deliver(lab, 2)

    def vanish():
        p = login(lab)
        p.dele(1)
        p.dele(2)
        p.sock.close()
    await asyncio.to_thread(vanish)
    assert await async_wait_for(lambda: not lab.ctx.store.maildrop_locked(USER))
    assert lab.ctx.store.user(USER).folder("INBOX").exists == 2


async def test_second_session_gets_in_use_until_the_first_quits(lab):
    await deliver(lab)

    def sessions():
        first = login(lab)
        second = pop(lab)
        second.user(USER)
        with pytest.raises(poplib.error_proto) as busy:
            second.pass_("maillab")
        first.quit()
        second.user(USER)                          # same connection: still in AUTHORIZATION (RFC 1939 §7)
        again = second.pass_("maillab")
        second.quit()
        return busy.value.args[0], again
    busy, again = await asyncio.to_thread(sessions)
    assert busy.startswith(b"-ERR [IN-USE] maildrop already locked")
    assert again.startswith(b"+OK maildrop has 1 message ")


async def test_bad_password_and_foreign_accounts_get_auth_error(lab):
    def attempts():
        out = []
        for user, password, address in [(USER, "wrong", SYR), ("nobody@syr.edu", "maillab", SYR),
                                        ("santa@northpole.org", "maillab", SYR),   # not this host's domain
                                        ("santa", "maillab", SYR)]:
            p = pop(lab, address)
            p.user(user)
            try:
                p.pass_(password)
                out.append(b"+OK?")
            except poplib.error_proto as e:
                out.append(e.args[0])
            p.quit()
        return out
    assert await asyncio.to_thread(attempts) == [b"-ERR [AUTH] invalid login or password"] * 4


async def test_bare_local_part_logs_in_on_the_domains_own_host(lab):
    await deliver(lab)
    await deliver(lab, to="santa@northpole.org", host="127.0.0.3")

    def bare():
        out = []
        for user, address in [("mafudge", SYR), ("santa", "127.0.0.3"), ("santa@northpole.org", "127.0.0.3")]:
            p = login(lab, user, address=address)
            out.append(p.stat()[0])
            p.quit()
        return out
    assert await asyncio.to_thread(bare) == [1, 1, 1]


async def test_only_mailbox_hosts_serve_pop3(lab):
    hosts = {e.host for e in lab.endpoints if e.service == "pop3"}
    assert hosts == {"smtp1.syr.edu", "mail.northpole.org", "mx.gmail.com", "mx1.luxsci.net",
                     "mail.cheap-pills.biz"}
    assert all(e.port == lab.ports.pop3 for e in lab.endpoints if e.service == "pop3")


async def test_transcript_events(lab):
    await deliver(lab)
    sub = lab.bus.subscribe()

    def session():
        p = login(lab)
        p.retr(1)
        p.quit()
    await asyncio.to_thread(session)
    events = await async_wait_for(lambda: [e for e in sub.drain() if isinstance(e, (SessionOpened, SessionLine,
                                                                                     SessionClosed))
                                           and "/pop3/" in e.session] or None)
    opened = [e for e in events if isinstance(e, SessionOpened)]
    assert opened and opened[0].protocol == "pop3" and opened[0].host == "smtp1.syr.edu"
    sid = opened[0].session
    lines = [(e.direction, e.text) for e in events if isinstance(e, SessionLine) and e.session == sid]
    assert lines[0] == ("server", "+OK smtp1.syr.edu POP3 maillab ready")
    assert ("client", f"USER {USER}") in lines and ("client", "PASS maillab") in lines
    retr = lines.index(("client", "RETR 1"))
    assert lines[retr + 1][0] == "server" and lines[retr + 1][1].endswith(" octets")
    assert lines[retr + 2][0] == "note" and lines[retr + 2][1].endswith(" bytes)")
    assert lines[retr + 3] == ("server", ".")
    assert len(lines) == retr + 6                      # then QUIT and its reply: no body lines anywhere
    closed = [e for e in events if isinstance(e, SessionClosed) and e.session == sid]
    assert await async_wait_for(lambda: closed or [e for e in sub.drain() if isinstance(e, SessionClosed)])


class Typist:
    """A student at telnet: lines out, one reply line back each."""

    def __init__(self, lab, address: str = SYR) -> None:
        self.sock = socket.create_connection((address, lab.ports.pop3), timeout=10)
        self.file = self.sock.makefile("rb")
        self.banner = self.line()

    def line(self) -> bytes:
        return self.file.readline()

    def say(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.line()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


async def test_garbage_overlong_and_nul_lines_do_not_hurt_the_server(lab):
    await deliver(lab)

    def abuse():
        t = Typist(lab)
        out = [t.say(b"\x00\x01\x02\r\n"), t.say(b"USER \xff\xfe\r\n"), t.say(b"A" * 100_000 + b"\r\n"),
               t.say(b"STAT\r\n"), t.say(b"RETR 1\r\n"), t.say(b"user mafudge\n"), t.say(b"pass maillab\n"),
               t.say(b"RETR 99999999999999999999999\r\n"), t.say(b"TOP 1 -1\r\n")]
        for _ in range(8):                             # TOP 1 -1 was the first bad one in a row
            t.say(b"\x80garbage\r\n")
        out.append(t.say(b"\x80garbage\r\n"))
        out.append(t.line())                           # then the server hangs up
        t.close()
        p = login(lab)                                 # another session is fine
        out.append(p.stat()[0])
        p.quit()
        return out
    out = await asyncio.to_thread(abuse)
    assert out[0] == b"-ERR NUL bytes are not allowed in commands\r\n"
    assert out[1] == b"-ERR invalid UTF-8 in command\r\n"
    assert out[2].startswith(b"-ERR line too long")
    assert out[3].startswith(b"-ERR STAT is not valid in the AUTHORIZATION state")
    assert out[4].startswith(b"-ERR RETR is not valid")
    assert out[5] == b"+OK send PASS\r\n" and out[6].startswith(b"+OK maildrop has 1 message ")
    assert out[7].startswith(b"-ERR no such message")
    assert out[8].startswith(b"-ERR invalid number of lines")
    assert out[9].endswith(b"10 bad commands in a row, closing the connection\r\n")
    assert out[10] == b""
    assert out[11] == 1


async def test_idle_session_is_logged_out_without_update(lab):
    await deliver(lab)
    lab.ctx.session_timeout = 0.5

    def idle():
        t = Typist(lab)
        t.say(b"USER mafudge\r\n")
        t.say(b"PASS maillab\r\n")
        dele = t.say(b"DELE 1\r\n")
        after = t.line()                               # nothing, then EOF (RFC 1939 §3)
        t.close()
        return dele, after
    dele, after = await asyncio.to_thread(idle)
    assert dele == b"+OK message 1 deleted\r\n" and after == b""
    assert await async_wait_for(lambda: not lab.ctx.store.maildrop_locked(USER))
    assert lab.ctx.store.user(USER).folder("INBOX").exists == 1


async def test_stop_closes_sessions_and_releases_the_maildrop(lab):
    await deliver(lab)
    t = await asyncio.to_thread(Typist, lab)
    await asyncio.to_thread(t.say, b"USER mafudge\r\n")
    assert (await asyncio.to_thread(t.say, b"PASS maillab\r\n")).startswith(b"+OK")
    server = next(a for a in lab._agents if isinstance(a, Pop3Server) and a.host.name == "smtp1.syr.edu")
    assert server.sessions == 1
    assert await async_wait_for(lambda: all(x.idle for x in server._sessions.values()))
    await server.stop()
    assert await asyncio.to_thread(t.line) == b"-ERR [SYS/TEMP] server shutting down\r\n"
    assert await asyncio.to_thread(t.line) == b""
    t.close()
    assert not lab.ctx.store.maildrop_locked(USER)


async def test_many_pipelined_commands_in_one_write(lab):
    await deliver(lab, 2)

    def pipelined():
        s = socket.create_connection((SYR, lab.ports.pop3), timeout=10)
        s.sendall(b"CAPA\r\nUSER mafudge\r\nPASS maillab\r\n" + b"STAT\r\nNOOP\r\n" * 500 + b"RETR 2\r\nQUIT\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        return data
    data = await asyncio.to_thread(pipelined)
    assert data.count(b"+OK 2 ") == 500 and data.count(b"+OK\r\n") == 500
    assert b"\r\n..a line that starts with a dot\r\n" in data
    assert data.endswith(b"signing off (2 messages left)\r\n")


# ---- curl (pop3://), as in the course's demo of a different client -------------------------

def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_tool("curl"), "-s", "-S", "--max-time", "20", *args], capture_output=True,
                          timeout=30)


@pytest.mark.interop
async def test_curl_lists_and_retrieves(lab):
    require_tool("curl")
    await deliver(lab, 2)
    folder = lab.ctx.store.user(USER).folder("INBOX")
    stored = [folder.read(m.uid, crlf=True) for m in folder.messages()]
    base = f"pop3://{SYR}:{lab.ports.pop3}/"
    listing = await asyncio.to_thread(curl, base, "-u", f"{USER}:maillab")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines() == [b"%d %d" % (i, len(s)) for i, s in enumerate(stored, 1)]
    one = await asyncio.to_thread(curl, base + "1", "-u", f"{USER}:maillab")
    assert one.returncode == 0, one.stderr
    assert one.stdout == stored[0]
    uidl = await asyncio.to_thread(curl, base, "-u", "mafudge:maillab", "-X", "UIDL")
    assert uidl.stdout.splitlines()[0] == b"1 " + folder.messages()[0].key.split(",")[0].encode()
    top = await asyncio.to_thread(curl, base, "-u", f"{USER}:maillab", "-X", "TOP 2 0")
    assert top.stdout == stored[1].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    bad = await asyncio.to_thread(curl, base, "-u", f"{USER}:wrong")
    assert bad.returncode == 67                       # CURLE_LOGIN_DENIED
    # curl authenticated with SASL PLAIN (it prefers AUTH when CAPA offers it)
    dele = await asyncio.to_thread(curl, base + "1", "-u", f"{USER}:maillab", "-X", "DELE", "-I")
    assert dele.returncode == 0, dele.stderr
    assert await async_wait_for(lambda: folder.exists == 1)


def test_serve_prints_a_pop3_line(served):
    lab = served()
    out = lab.output()
    assert any(line.startswith("listening  pop3") and f"127.0.0.1:{lab.ports.pop3}" in line
               for line in out.splitlines())
    p = poplib.POP3("127.0.0.1", lab.ports.pop3, timeout=10)
    p.user("mafudge")
    p.pass_("maillab")
    assert p.stat() == (0, 0)
    p.quit()
