"""SMTP sessions against a running lab, over real sockets: what a student sees.

Blocking clients (raw sockets, smtplib) run in a thread, since the lab runs in
the test's event loop.
"""

from __future__ import annotations

import asyncio
import random
import smtplib
import socket
import time
import weakref

from maillab.base.events import SessionClosed, SessionLine

from conftest import async_wait_for, maildir_messages


class Typist:
    """A student at `nc`: bare-LF lines, one reply read after each."""

    def __init__(self, address: str, port: int, timeout: float = 10) -> None:
        self.sock = socket.create_connection((address, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.banner = self.reply()

    def reply(self) -> list[str]:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                return lines
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if line[3:4] != b"-":
                return lines

    def say(self, line: str | bytes, eol: bytes = b"\n") -> list[str]:
        self.sock.sendall((line.encode() if isinstance(line, str) else line) + eol)
        return self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


async def test_course_telnet_session_typed_with_bare_lf(lab):
    port = lab.ports.smtp

    def session():
        t = Typist("127.0.0.1", port)
        out = [t.banner, t.say("helo northpole.org"), t.say("mail from: santa@northpole.org"),
               t.say("rcpt to: mafudge@syr.edu"), t.say("data")]
        t.send(b"Subject: You are on the naughty list\nFrom: santa@northpole.org\n"
               b"To: mafudge@syr.edu\n\nfyi.\n")
        out += [t.say("."), t.say("quit")]
        t.close()
        return out

    banner, helo, mail, rcpt, data, dot, quit_ = await asyncio.to_thread(session)
    assert banner == ["220 smtp1.syr.edu ESMTP maillab"]
    assert helo == ["250 smtp1.syr.edu Hello northpole.org [127.0.0.1]"]   # what the server saw
    assert mail == ["250 2.1.0 Ok"]
    assert rcpt == ["250 2.1.5 Ok"]
    assert data[0].startswith("354 ")
    assert dot[0].startswith("250 2.0.0 Ok: queued as ")
    assert quit_[0].startswith("221 2.0.0")
    state = lab.state.root
    msgs = await async_wait_for(lambda: maildir_messages(state, "mafudge@syr.edu"))
    assert len(msgs) == 1
    msg = msgs[0]
    assert msg["Subject"] == "You are on the naughty list"
    assert msg["Return-Path"] == "<santa@northpole.org>"
    assert msg["Delivered-To"] == "mafudge@syr.edu"
    queue_id = dot[0].rsplit(" ", 1)[1]
    received = msg["Received"]
    assert received.startswith("from northpole.org (smtp1.syr.edu [127.0.0.1])")
    assert f"by smtp1.syr.edu (maillab) with SMTP id {queue_id}" in received
    assert "for <mafudge@syr.edu>;" in received
    assert msg.get_payload() == "fyi.\n"


async def test_ehlo_offers_the_extensions_it_supports(lab):
    def ehlo():
        s = smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=10)
        code, text = s.ehlo("client.example")
        s.quit()
        return code, text.decode().splitlines()

    code, lines = await asyncio.to_thread(ehlo)
    assert code == 250
    assert lines[0] == "smtp1.syr.edu Hello client.example [127.0.0.1]"
    for keyword in ("PIPELINING", "SIZE 10485760", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "DSN"):
        assert keyword in lines
    assert "HELP" not in lines


async def test_smtplib_sendmail_delivers_and_transcript_events_flow(lab):
    sub = lab.bus.subscribe()

    def send():
        with smtplib.SMTP("127.0.0.4", lab.ports.smtp, timeout=10) as s:
            s.sendmail("bob@luxsci.net", ["tim.jorgensen@gmail.com"],
                       b"Subject: smtplib\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n")

    await asyncio.to_thread(send)
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "tim.jorgensen@gmail.com"))
    assert msgs[0].get_payload() == ".leading dot\n..two dots\nend\n"
    lines = [e for e in sub.drain() if isinstance(e, SessionLine) and e.host == "mx.gmail.com"]
    texts = [(e.direction, e.text) for e in lines]
    assert ("server", "220 mx.gmail.com ESMTP maillab") in texts
    assert any(d == "client" and t.upper().startswith("MAIL FROM:<BOB@LUXSCI.NET>") for d, t in texts)
    assert any(d == "note" and t.startswith("(message body: 5 lines") for d, t in texts)
    assert ("client", ".") in texts


async def test_a_big_body_with_dot_lines_everywhere_arrives_byte_for_byte(lab):
    """Long stretches without a dot line (read in big steps), dot lines, a line of 998 octets."""
    rng = random.Random(5)
    lines = []
    for i in range(3000):
        kind = rng.random()
        lines.append(b"." * rng.randint(1, 3) + b"dot %d" % i if kind < 0.05 else
                     b"x" * 998 if kind < 0.06 else b"line %d " % i + b"y" * rng.randint(0, 120))
    body = b"\r\n".join(lines) + b"\r\n"

    def send():
        with smtplib.SMTP("127.0.0.4", lab.ports.smtp, timeout=30) as s:
            s.sendmail("bob@luxsci.net", ["tim.jorgensen@gmail.com"], b"Subject: big\r\n\r\n" + body)

    await asyncio.to_thread(send)
    msgs = await async_wait_for(lambda: maildir_messages(lab.state.root, "tim.jorgensen@gmail.com"))
    assert msgs[0].get_payload().encode() == body.replace(b"\r\n", b"\n")
    assert len(body) > 200_000


async def test_pipelined_commands_get_replies_in_order(lab):
    def pipelined():
        t = Typist("127.0.0.2", lab.ports.smtp)
        t.say("EHLO pipe.example", b"\r\n")
        t.send(b"MAIL FROM:<santa@northpole.org>\r\nRCPT TO:<mafudge@syr.edu>\r\nRCPT TO:<x@gmail.com>\r\n"
               b"DATA\r\n")
        replies = [t.reply() for _ in range(4)]
        replies.append(t.say(b"Subject: piped\r\n\r\nhi\r\n.\r\nQUIT", b"\r\n"))
        replies.append(t.reply())
        t.close()
        return replies

    replies = await asyncio.to_thread(pipelined)
    codes = [r[0][:3] for r in replies]
    assert codes == ["250", "250", "554", "354", "250", "221"]   # smtp2 is a backup MX for syr.edu


async def test_bad_input_gets_clear_errors_and_the_session_survives(lab):
    def abuse():
        t = Typist("127.0.0.1", lab.ports.smtp)
        out = {
            "rcpt first": t.say("RCPT TO:<mafudge@syr.edu>"),
            "mail before helo": t.say("MAIL FROM:<a@b.example>"),
        }
        t.say("EHLO abuse.example")
        out["garbage"] = t.say(b"\x01\x02garbage")
        out["nul"] = t.say(b"MAIL FROM:<a\x00b@northpole.org>")
        out["utf8"] = t.say(b"MAIL FROM:<\xff\xfe@northpole.org>")
        out["malformed"] = t.say("MAIL FROM:<<<>>>")
        out["long"] = t.say("NOOP " + "x" * 5000)
        out["huge"] = t.say("NOOP " + "y" * 200_000)
        out["data no rcpt"] = t.say("DATA")
        out["ok after"] = t.say("MAIL FROM:<santa@northpole.org>")
        out["bad domain"] = t.say("RCPT TO:<someone@-bad-.example>")
        t.close()
        return out

    out = await asyncio.to_thread(abuse)
    assert out["rcpt first"][0].startswith("503 5.5.1")
    assert out["mail before helo"][0].startswith("503 5.5.1")
    assert out["garbage"][0].startswith("500 5.5.2")
    assert out["nul"][0].startswith("501 5.1.3")
    assert out["utf8"][0].startswith("501 5.6.7")
    assert out["malformed"][0][:3] in ("501", "553")
    assert out["long"][0].startswith("500 5.5.2")
    assert out["huge"][0].startswith("500 5.5.2")
    assert out["data no rcpt"][0].startswith("503 5.5.1")
    assert out["ok after"] == ["250 2.1.0 Ok"]
    assert out["bad domain"][0].startswith("501 5.1.2")


async def test_oversize_message_and_overlong_body_line_are_refused_after_the_dot(lab):
    limit = lab.world.message_size_limit

    def send(body: bytes):
        t = Typist("127.0.0.1", lab.ports.smtp)
        t.say("EHLO big.example")
        t.say("MAIL FROM:<santa@northpole.org>")
        t.say("RCPT TO:<mafudge@syr.edu>")
        t.say("DATA")
        t.send(body)
        reply = t.say(".", b"\r\n")
        after = t.say("NOOP")
        t.close()
        return reply, after

    big, after = await asyncio.to_thread(send, (b"z" * 998 + b"\r\n") * (limit // 1000 + 10))
    assert big[0].startswith("552 5.3.4")
    assert after == ["250 2.0.0 OK"]
    long_line, after = await asyncio.to_thread(send, b"Subject: x\r\n\r\n" + b"w" * 5000 + b"\r\n")
    assert long_line[0].startswith("500 5.5.2")
    assert after == ["250 2.0.0 OK"]
    assert maildir_messages(lab.state.root, "mafudge@syr.edu") == []


async def test_silent_client_gets_421_and_is_closed(lab):
    for mta in lab.mtas.values():
        mta.ctx.session_timeout = 0.5
    # the timeout applies to new sessions

    def silent():
        t = Typist("127.0.0.1", lab.ports.smtp)
        line = t.reply()
        rest = t.file.read()
        t.close()
        return line, rest

    line, rest = await asyncio.to_thread(silent)
    assert line[0].startswith("421 4.4.2 smtp1.syr.edu")
    assert rest == b""


async def test_a_client_that_keeps_talking_is_not_timed_out(lab):
    for mta in lab.mtas.values():
        mta.ctx.session_timeout = 0.5

    def talk():
        t = Typist("127.0.0.1", lab.ports.smtp)
        replies = []
        for _ in range(6):                  # 1.5 s in all, three times the timeout
            time.sleep(0.25)
            replies.append(t.say("NOOP")[0])
        started = time.monotonic()
        last = t.reply()                    # then silent: the timeout counts from the last command
        t.close()
        return replies, last, time.monotonic() - started

    replies, last, waited = await asyncio.to_thread(talk)
    assert replies == ["250 2.0.0 OK"] * 6
    # silent from the last command on, it is closed by the 0.5 s timeout (not the fixture's 30 s);
    # a loaded machine only makes `waited` longer
    assert last[0].startswith("421 4.4.2") and 0.3 < waited < 15


async def test_hundreds_of_idle_connections_do_not_stop_a_real_session(lab):
    def connect_idle():
        return [socket.create_connection(("127.0.0.1", lab.ports.smtp), timeout=10) for _ in range(300)]

    idle = await asyncio.to_thread(connect_idle)

    def real():
        with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=20) as s:
            return s.sendmail("santa@northpole.org", ["relstad@syr.edu"], b"Subject: busy\r\n\r\nstill here\r\n")

    try:
        assert await asyncio.to_thread(real) == {}
        assert await async_wait_for(lambda: maildir_messages(lab.state.root, "relstad@syr.edu"))
    finally:
        for s in idle:
            s.close()


async def test_client_that_vanishes_mid_data_leaves_nothing(lab):
    sub = lab.bus.subscribe(kinds=(SessionClosed,))

    def vanish():
        t = Typist("127.0.0.1", lab.ports.smtp)
        t.say("EHLO gone.example")
        t.say("MAIL FROM:<santa@northpole.org>")
        t.say("RCPT TO:<mafudge@syr.edu>")
        t.say("DATA")
        t.send(b"Subject: half\r\n\r\nhalf a mess")
        t.close()

    await asyncio.to_thread(vanish)
    await async_wait_for(sub.drain, what="the vanished session to close")
    await lab.wait_idle()
    assert maildir_messages(lab.state.root, "mafudge@syr.edu") == []
    assert lab.mta("smtp1.syr.edu").queue.entries == {}


async def test_a_finished_session_is_freed_by_reference_counting_not_left_to_the_collector(lab, monkeypatch):
    """A session that ends leaves no reference cycle: freed at once, not by a pause of the
    garbage collector (100+ ms in a flood)."""
    import gc
    from maillab.smtp.server import SmtpServer

    sessions: list[weakref.ref] = []
    made = SmtpServer.new_session

    def noted(self, reader, writer):
        session = made(self, reader, writer)
        sessions.append(weakref.ref(session))
        return session
    monkeypatch.setattr(SmtpServer, "new_session", noted)

    def send(n: int) -> None:
        for _ in range(n):
            with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=10) as s:
                s.sendmail("santa@northpole.org", ["mafudge@syr.edu"], b"Subject: x\r\n\r\nhi\r\n")

    await asyncio.to_thread(send, 2)
    await lab.wait_idle()
    gc.collect()
    gc.disable()            # from now on only reference counting frees a session
    try:
        sessions.clear()
        await asyncio.to_thread(send, 10)
        await lab.wait_idle()
        assert len(sessions) == 10
        await async_wait_for(lambda: not any(r() is not None for r in sessions),
                             what=lambda: f"{sum(r() is not None for r in sessions)} sessions to be freed")
    finally:
        gc.enable()
