"""send_hop and relay_hop against real peers on loopback: aiosmtpd, small scripted servers, the
lab's own SMTP server, Postfix's smtp-sink when installed."""

from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from maillab.base.clock import Clock
from maillab.base.events import EventBus, MxTried, Notice, Queued, SessionClosed, SessionLine, SessionOpened
from maillab.smtp.client import HopResult, Unresolved, relay_hop, send_hop
from maillab.smtp.client_protocol import Credentials, Rcpt

from conftest import async_wait_for, maildir_messages
from netutil import require_tool

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

MESSAGE = (b"From: mafudge@syr.edu\r\nTo: bob@luxsci.net\r\nSubject: hello\r\n\r\n"
           b"Hi Bob,\r\nsee you.\r\n")
EIGHTBIT = MESSAGE.replace(b"see you", "à bientôt".encode())


class Recorder:
    """aiosmtpd handler that keeps what it got and refuses nobody@*."""

    def __init__(self) -> None:
        self.mail_options: list[list[str]] = []
        self.received: list[dict[str, Any]] = []

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        self.mail_options.append(mail_options)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append({"peer": session.peer[0], "helo": session.host_name,
                              "sender": envelope.mail_from, "rcpts": list(envelope.rcpt_tos),
                              "content": envelope.content})
        return "250 2.0.0 Ok: queued as 4XyZ12"


@asynccontextmanager
async def aiosmtpd_peer(handler: Recorder, **options: Any) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="peer.test", **options), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def scripted_peer(greeting: bytes | None,
                        answer: Callable[[str], bytes | None] = lambda line: b"250 Ok\r\n",
                        ) -> AsyncIterator[int]:
    """A hand-made server: sends `greeting`, then `answer(command)` per line.

    After a 354 it swallows the body up to the lone "." and answers that with
    answer(".").  From `answer`, b"" closes the connection, None says nothing.
    A greeting of None makes a server that never speaks.
    """
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if greeting is None:
                await reader.read()          # silent: wait for the client to give up
                return
            writer.write(greeting)
            in_data = False
            while line := await reader.readline():
                text = line.decode().rstrip("\r\n")
                if in_data and text != ".":
                    continue
                reply = answer(text)
                if reply is None:
                    continue
                in_data = reply.startswith(b"354")
                if not reply:
                    break
                writer.write(reply)
                await writer.drain()
                if text == "QUIT":
                    break
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def willing(ehlo_reply: bytes, seen: list[str]) -> Callable[[str], bytes]:
    """For scripted_peer: `ehlo_reply` to EHLO, 354 to DATA, 221 to QUIT, 250 to the rest;
    each command line is kept in `seen`."""
    def answer(line: str) -> bytes:
        seen.append(line)
        if line.startswith("EHLO"):
            return ehlo_reply
        if line == "DATA":
            return b"354 go ahead\r\n"
        return b"221 bye\r\n" if line == "QUIT" else b"250 Ok\r\n"
    return answer


async def hop(port: int, bus: EventBus | None = None, **overrides: Any) -> HopResult:
    args: dict[str, Any] = dict(
        helo="smtp1.syr.edu", source_ip=None, dest_ip="127.0.0.1", dest_port=port,
        sender="mafudge@syr.edu", recipients=["bob@luxsci.net"], message=MESSAGE,
        bus=bus or EventBus(), clock=Clock(), session="smtp1.syr.edu/smtp-out/1",
        host="smtp1.syr.edu", timeout=5.0)
    args.update(overrides)
    return await send_hop(**args)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_delivers_a_message() -> None:
    handler = Recorder()
    async with aiosmtpd_peer(handler) as port:
        result = await hop(port, message=EIGHTBIT)
    assert result.connected and not result.error and not result.temporary
    assert result.greeting is not None and result.greeting.code == 220
    assert str(result.rcpt_replies["bob@luxsci.net"]) == "250 2.0.0 Ok: queued as 4XyZ12"
    assert result.rcpt_stage["bob@luxsci.net"] == "END-OF-MESSAGE"
    assert result.accepted == ["bob@luxsci.net"]
    assert result.peer_queue_id == "4XyZ12"
    assert "SIZE" in result.extensions and "8BITMIME" in result.extensions
    [got] = handler.received
    assert got["helo"] == "smtp1.syr.edu"
    assert got["sender"] == "mafudge@syr.edu" and got["rcpts"] == ["bob@luxsci.net"]
    assert got["content"] == EIGHTBIT
    assert handler.mail_options == [[f"SIZE={len(EIGHTBIT)}", "BODY=8BITMIME"]]


async def test_plain_mail_from_without_eightbit() -> None:
    handler = Recorder()
    async with aiosmtpd_peer(handler) as port:
        await hop(port)
    assert handler.mail_options == [[f"SIZE={len(MESSAGE)}"]]


async def test_smtputf8_when_offered() -> None:
    handler = Recorder()
    async with aiosmtpd_peer(handler, enable_SMTPUTF8=True) as port:
        result = await hop(port, sender="jörg@syr.edu")
    assert result.accepted == ["bob@luxsci.net"]
    assert "SMTPUTF8" in handler.mail_options[0]
    assert handler.received[0]["sender"] == "jörg@syr.edu"


async def test_dot_stuffing_arrives_intact() -> None:
    body = b"Subject: dots\r\n\r\n.hidden\r\n.\r\n..\r\nmiddle . dot\r\n.last line without CRLF"
    handler = Recorder()
    async with aiosmtpd_peer(handler) as port:
        result = await hop(port, message=body)
    assert result.accepted == ["bob@luxsci.net"]
    assert handler.received[0]["content"] == body + b"\r\n"


async def test_message_starting_with_a_dot() -> None:
    handler = Recorder()
    async with aiosmtpd_peer(handler) as port:
        await hop(port, message=b".\r\n")
    assert handler.received[0]["content"] == b".\r\n"


async def test_one_recipient_refused_the_other_delivered() -> None:
    handler = Recorder()
    async with aiosmtpd_peer(handler) as port:
        result = await hop(port, recipients=["nobody@luxsci.net", "bob@luxsci.net"])
    refused = result.rcpt_replies["nobody@luxsci.net"]
    assert refused.code == 550 and refused.enhanced == "5.1.1" and refused.is_permanent
    assert result.rcpt_stage["nobody@luxsci.net"] == "RCPT TO"
    assert result.rcpt_replies["bob@luxsci.net"].code == 250
    assert result.accepted == ["bob@luxsci.net"]
    assert handler.received[0]["rcpts"] == ["bob@luxsci.net"]


async def test_no_data_when_every_recipient_is_refused() -> None:
    handler = Recorder()
    bus = EventBus()
    sub = bus.subscribe()
    async with aiosmtpd_peer(handler) as port:
        result = await hop(port, bus, recipients=["nobody@luxsci.net"])
    assert result.rcpt_replies["nobody@luxsci.net"].code == 550
    assert not result.error and handler.received == []
    sent = [e.text for e in sub.drain() if isinstance(e, SessionLine) and e.direction == "client"]
    assert "DATA" not in sent and sent[-1] == "QUIT"


async def test_connection_refused_is_temporary() -> None:
    port = free_port()
    bus = EventBus()
    sub = bus.subscribe()
    result = await hop(port, bus)
    assert not result.connected and result.temporary
    assert result.error == f"connect to 127.0.0.1:{port}: Connection refused"
    assert result.rcpt_replies == {} and result.greeting is None
    # the try is still a session row (issue 13), closed with its reason
    opened, note, closed = sub.drain()
    assert isinstance(opened, SessionOpened) and opened.protocol == "smtp-out"
    assert opened.peer == f"127.0.0.1:{port}"
    assert isinstance(note, SessionLine) and note.direction == "note" and note.text == result.error
    assert isinstance(closed, SessionClosed) and closed.reason == result.error


async def test_silent_server_times_out() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    async with scripted_peer(None) as port:
        result = await hop(port, bus, timeout=0.5)
    assert result.connected and result.temporary
    assert result.error == "timeout after CONNECT"
    assert result.rcpt_replies == {}
    events = sub.drain()
    assert isinstance(events[0], SessionOpened)
    assert isinstance(events[-1], SessionClosed) and events[-1].reason == "timeout after CONNECT"


async def test_timeout_waiting_for_the_end_of_data_reply() -> None:
    def answer(line: str) -> bytes | None:
        if line == ".":
            return None                     # never answer the end of data
        return b"354 go ahead\r\n" if line == "DATA" else b"250 Ok\r\n"

    async with scripted_peer(b"220 slow.test ESMTP\r\n", answer) as port:
        result = await hop(port, timeout=0.5)
    assert result.error == "timeout after END-OF-MESSAGE" and result.temporary
    assert result.rcpt_replies == {}     # undecided: the MTA retries (maybe a duplicate)


async def test_transcript_on_the_bus() -> None:
    handler = Recorder()
    bus = EventBus()
    sub = bus.subscribe()
    clock = Clock(start=1_700_000_000.0)
    async with aiosmtpd_peer(handler) as port:
        await hop(port, bus, clock=clock, recipients=["nobody@luxsci.net", "bob@luxsci.net"])
    events = sub.drain()
    opened, *lines, closed = events
    assert opened == SessionOpened(opened.time, "smtp1.syr.edu/smtp-out/1", "smtp-out",
                                   "smtp1.syr.edu", f"127.0.0.1:{port}")
    assert isinstance(closed, SessionClosed) and closed.reason == "QUIT"
    assert all(isinstance(e, SessionLine) and e.session == opened.session
               and e.host == "smtp1.syr.edu" for e in lines)
    assert all(1_700_000_000.0 <= e.time < 1_700_000_100.0 for e in events)
    said = [(e.direction, e.text) for e in lines]
    assert said[0][0] == "server" and said[0][1].startswith("220 peer.test")
    assert ("client", "EHLO smtp1.syr.edu") in said
    assert ("server", "250-peer.test") in said
    assert ("client", f"MAIL FROM:<mafudge@syr.edu> SIZE={len(MESSAGE)}") in said
    assert ("client", "RCPT TO:<nobody@luxsci.net>") in said
    assert ("server", "550 5.1.1 <nobody@luxsci.net>: Recipient address rejected: "
                      "User unknown") in said
    body_at = said.index(("note", f"(message body: 6 lines, {len(MESSAGE)} bytes)"))
    assert said[body_at - 2:body_at] == [("client", "DATA"), said[body_at - 1]]
    assert said[body_at - 1][1].startswith("354")
    assert said[body_at + 1] == ("client", ".")
    assert said[body_at + 2] == ("server", "250 2.0.0 Ok: queued as 4XyZ12")
    assert said[-2] == ("client", "QUIT") and said[-1][1].startswith("221")
    assert not any("Hi Bob" in text or "Subject" in text for _, text in said)


async def test_binds_the_source_address() -> None:
    handler = Recorder()
    async with aiosmtpd_peer(handler) as port:
        result = await hop(port, source_ip="127.0.0.3")
    if result.error and "assign" in result.error:     # pragma: no cover - macOS
        pytest.skip("only 127.0.0.1 can be bound here")
    assert handler.received[0]["peer"] == "127.0.0.3"


async def test_size_limit_fails_permanently_without_sending() -> None:
    handler = Recorder()
    bus = EventBus()
    sub = bus.subscribe()
    async with aiosmtpd_peer(handler, data_size_limit=50) as port:
        result = await hop(port, bus, recipients=["bob@luxsci.net", "alice@luxsci.net"])
    for reply in result.rcpt_replies.values():
        assert reply.code == 552 and reply.enhanced == "5.3.4"
    assert set(result.rcpt_replies) == {"bob@luxsci.net", "alice@luxsci.net"}
    assert not result.error and handler.mail_options == []
    sent = [e.text for e in sub.drain() if isinstance(e, SessionLine) and e.direction == "client"]
    assert sent == ["EHLO smtp1.syr.edu", "QUIT"]


async def test_helo_fallback_when_ehlo_is_unknown() -> None:
    seen: list[str] = []
    answer = willing(b"502 5.5.2 Error: command not recognized\r\n", seen)
    async with scripted_peer(b"220 old.test SMTP\r\n", answer) as port:
        result = await hop(port)
    assert result.accepted == ["bob@luxsci.net"] and result.extensions == {}
    assert seen == ["EHLO smtp1.syr.edu", "HELO smtp1.syr.edu",
                    "MAIL FROM:<mafudge@syr.edu>", "RCPT TO:<bob@luxsci.net>",
                    "DATA", ".", "QUIT"]


@pytest.mark.parametrize("greeting, permanent", [
    (b"554 5.7.1 go away\r\n", True),
    (b"421 4.3.2 too busy\r\n", False),
])
async def test_refusing_greeting_applies_to_everyone(greeting: bytes, permanent: bool) -> None:
    async with scripted_peer(greeting, lambda line: b"221 bye\r\n") as port:
        result = await hop(port, recipients=["a@x.test", "b@x.test"])
    assert result.greeting is not None and result.greeting.code == int(greeting[:3])
    assert set(result.rcpt_replies) == {"a@x.test", "b@x.test"}
    assert all(r.is_permanent == permanent and r.is_transient != permanent
               for r in result.rcpt_replies.values())
    assert set(result.rcpt_stage.values()) == {"CONNECT"}
    assert not result.error


async def test_mail_from_refusal_applies_to_everyone() -> None:
    def answer(line: str) -> bytes:
        if line.startswith("MAIL"):
            return b"451 4.3.0 try again later\r\n"
        return b"221 bye\r\n" if line == "QUIT" else b"250 Ok\r\n"

    async with scripted_peer(b"220 x.test ESMTP\r\n", answer) as port:
        result = await hop(port, recipients=["a@x.test", "b@x.test"])
    assert {str(r) for r in result.rcpt_replies.values()} == {"451 4.3.0 try again later"}
    assert set(result.rcpt_stage.values()) == {"MAIL FROM"}


async def test_end_of_data_refusal_keeps_rcpt_refusals() -> None:
    def answer(line: str) -> bytes:
        if line == "RCPT TO:<a@x.test>":
            return b"550 5.1.1 no such user\r\n"
        if line == "DATA":
            return b"354 go ahead\r\n"
        if line == ".":
            return b"554 5.7.1 looks like spam\r\n"
        return b"221 bye\r\n" if line == "QUIT" else b"250 Ok\r\n"

    async with scripted_peer(b"220 x.test ESMTP\r\n", answer) as port:
        result = await hop(port, recipients=["a@x.test", "b@x.test"])
    assert str(result.rcpt_replies["a@x.test"]) == "550 5.1.1 no such user"
    assert str(result.rcpt_replies["b@x.test"]) == "554 5.7.1 looks like spam"
    assert result.rcpt_stage == {"a@x.test": "RCPT TO", "b@x.test": "END-OF-MESSAGE"}
    assert result.accepted == [] and result.peer_queue_id == ""


async def test_garbage_from_the_peer_is_a_temporary_failure() -> None:
    async with scripted_peer(b"SSH-2.0-OpenSSH_9.6\r\n") as port:
        result = await hop(port)
    assert result.connected and result.temporary
    assert result.error.startswith("protocol error after CONNECT: malformed reply line")


async def test_peer_hanging_up_mid_dialogue() -> None:
    def answer(line: str) -> bytes:
        return b"" if line.startswith("RCPT") else b"250 Ok\r\n"

    async with scripted_peer(b"220 x.test ESMTP\r\n", answer) as port:
        result = await hop(port)
    assert result.error == "lost connection after RCPT TO" and result.temporary
    assert result.rcpt_replies == {}


async def test_quit_needs_no_answer() -> None:
    def answer(line: str) -> bytes:
        if line == "DATA":
            return b"354 go ahead\r\n"
        return b"" if line == "QUIT" else b"250 2.0.0 Ok: queued as Q1\r\n"

    async with scripted_peer(b"220 x.test ESMTP\r\n", answer) as port:
        result = await hop(port)
    assert result.accepted == ["bob@luxsci.net"] and not result.error
    assert result.peer_queue_id == "Q1"


async def test_line_breaks_in_arguments_are_our_bug() -> None:
    with pytest.raises(ValueError):
        await hop(free_port(), recipients=["bob@luxsci.net\r\nDATA"])


# ---- issue 15: the adapter over the sans-IO client, against real servers -----------------------

async def test_pipelining_sends_the_whole_group_before_any_reply() -> None:
    """A peer that answers MAIL only once it has read every RCPT: a client that waits for each
    reply (no PIPELINING) hangs here until its time-out."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 pipe.test ESMTP\r\n")
        lines = []
        while line := await reader.readline():
            text = line.decode().rstrip("\r\n")
            seen.append(text)
            if text.startswith("EHLO"):
                writer.write(b"250-pipe.test\r\n250 PIPELINING\r\n")
            elif text.startswith(("MAIL", "RCPT")):
                lines.append(text)
                if len(lines) == 3:                  # MAIL and both RCPTs read: now the replies
                    writer.write(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n")
            elif text == "DATA":
                writer.write(b"354 go ahead\r\n")
                while (await reader.readline()) != b".\r\n":
                    pass
                writer.write(b"250 2.0.0 Ok: queued as P1\r\n")
            elif text == "QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                break
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        result = await hop(server.sockets[0].getsockname()[1], timeout=3.0,
                           recipients=["bob@luxsci.net", "nobody@luxsci.net"])
    finally:
        server.close()
        await server.wait_closed()
    assert not result.error, result.error
    assert result.accepted == ["bob@luxsci.net"] and result.kind("nobody@luxsci.net") == "permanent"
    assert result.peer_queue_id == "P1"
    assert seen[:4] == ["EHLO smtp1.syr.edu", "MAIL FROM:<mafudge@syr.edu>", "RCPT TO:<bob@luxsci.net>",
                        "RCPT TO:<nobody@luxsci.net>"] and seen[4] == "DATA"


async def test_utf8_address_to_a_server_without_smtputf8_is_not_sent() -> None:
    handler = Recorder()
    async with aiosmtpd_peer(handler) as port:          # aiosmtpd offers no SMTPUTF8 by default
        result = await hop(port, sender="jörg@syr.edu")
    reply = result.rcpt_replies["bob@luxsci.net"]
    assert (reply.code, reply.enhanced) == (553, "5.6.7") and result.kind("bob@luxsci.net") == "permanent"
    assert handler.mail_options == [] and handler.received == []


async def test_dsn_parameters_reach_a_server_that_offers_dsn() -> None:
    seen: list[str] = []
    async with scripted_peer(b"220 dsn.test ESMTP\r\n", willing(b"250-dsn.test\r\n250 DSN\r\n", seen)) as port:
        result = await hop(port, ret="HDRS", envid="Q1",
                           recipients=[Rcpt("bob@luxsci.net", ("FAILURE",), "rfc822;bob@luxsci.net")])
    assert result.accepted == ["bob@luxsci.net"]
    assert seen[1:3] == ["MAIL FROM:<mafudge@syr.edu> RET=HDRS ENVID=Q1",
                         "RCPT TO:<bob@luxsci.net> NOTIFY=FAILURE ORCPT=rfc822;bob@luxsci.net"]


class Authenticator:
    def __init__(self) -> None:
        self.logins: list[tuple[str, str]] = []

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        self.logins.append((mechanism, auth_data.login.decode()))
        return AuthResult(success=auth_data.password == b"maillab", handled=False)


@pytest.mark.parametrize("mechanisms, used", [(None, "PLAIN"), (["PLAIN"], "LOGIN")])
async def test_auth_against_aiosmtpd(mechanisms: list[str] | None, used: str) -> None:
    handler, auth = Recorder(), Authenticator()
    async with aiosmtpd_peer(handler, authenticator=auth, auth_require_tls=False,
                             auth_exclude_mechanism=mechanisms) as port:
        good = await hop(port, credentials=Credentials("mafudge@syr.edu", "maillab"))
        bad = await hop(port, credentials=Credentials("mafudge@syr.edu", "wrong"))
    assert good.authenticated and good.accepted == ["bob@luxsci.net"]
    assert auth.logins == [(used, "mafudge@syr.edu")] * 2
    assert not bad.authenticated and bad.rcpt_stage == {"bob@luxsci.net": "AUTH"}
    assert bad.rcpt_replies["bob@luxsci.net"].code == 535 and len(handler.received) == 1


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts for "localhost", the certificate made by openssl."""
    openssl = require_tool("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


async def test_starttls_upgrades_the_connection_and_says_ehlo_again(tmp_path: Path) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    handler = Recorder()
    bus = EventBus()
    sub = bus.subscribe()
    async with aiosmtpd_peer(handler, tls_context=server_tls, require_starttls=True) as port:
        result = await hop(port, bus, mode="starttls", tls_context=client_tls, server_hostname="localhost")
    assert not result.error, result.error
    assert result.tls and result.accepted == ["bob@luxsci.net"] and "STARTTLS" not in result.extensions
    sent = [e.text for e in sub.drain() if isinstance(e, SessionLine) and e.direction == "client"]
    assert sent[:3] == ["EHLO smtp1.syr.edu", "STARTTLS", "EHLO smtp1.syr.edu"]


async def test_implicit_tls(tmp_path: Path) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    handler = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="peer.test"), "127.0.0.1", 0,
                                      ssl=server_tls)
    try:
        result = await hop(server.sockets[0].getsockname()[1], mode="tls", tls_context=client_tls,
                           server_hostname="localhost")
    finally:
        server.close()
        await server.wait_closed()
    assert result.tls and result.accepted == ["bob@luxsci.net"] and not result.error
    assert handler.received[0]["content"] == MESSAGE


async def test_a_failed_handshake_is_a_temporary_error(tmp_path: Path) -> None:
    server_tls, _ = self_signed(tmp_path)
    async with aiosmtpd_peer(Recorder(), tls_context=server_tls) as port:
        result = await hop(port, mode="starttls", tls_context=ssl.create_default_context(),
                           server_hostname="localhost")
    assert result.temporary and result.error.startswith("lost connection after STARTTLS (TLS handshake: ")
    assert result.rcpt_replies == {}


async def test_relay_hop_lists_every_mx_tried(tmp_path: Path) -> None:
    port = free_port()                           # nothing listens on 127.0.0.1 at this port
    handler = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="mx3.test"), "127.0.0.2", port)

    async def addresses(name: str) -> list[str]:
        if name == "mx1.test":
            raise Unresolved("Host or domain name not found. Name service error for name=mx1.test type=A")
        return {"mx2.test": ["127.0.0.1"], "mx3.test": ["127.0.0.2"]}[name]

    bus = EventBus()
    sub = bus.subscribe()
    try:
        walk = await relay_hop(["mx1.test", "mx2.test", "mx3.test"], addresses, port=port,
                               helo="smtp1.syr.edu", source_ip=None, sender="mafudge@syr.edu",
                               recipients=["bob@luxsci.net", "nobody@luxsci.net"], message=MESSAGE,
                               bus=bus, clock=Clock(), host="smtp1.syr.edu", queue_id="Q1", timeout=5.0)
    finally:
        server.close()
        await server.wait_closed()
    tries = [(t.mx, t.address, t.result, t.reason) for t in walk.tries]
    assert tries == [
        ("mx1.test", "", "deferred", "Host or domain name not found. Name service error for name=mx1.test type=A"),
        ("mx2.test", f"127.0.0.1:{port}", "refused", "Connection refused"),
        ("mx3.test", f"127.0.0.2:{port}", "delivered", "250 2.0.0 Ok: queued as 4XyZ12")]
    assert [t.peer_queue_id for t in walk.tries] == ["", "", "4XyZ12"] and walk.peer_queue_id == "4XyZ12"
    assert walk.tries[0].session == "" and walk.tries[1].session != walk.tries[2].session
    assert walk.decided["bob@luxsci.net"].relay == f"mx3.test[127.0.0.2]:{port}"
    assert walk.decided["nobody@luxsci.net"].reply.code == 550
    events = sub.drain()
    assert [e for e in events if isinstance(e, MxTried)] == walk.tries       # on the bus as they ended
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert notices == [f"connect to mx2.test[127.0.0.1]:{port}: Connection refused"]
    opened = {e.session for e in events if isinstance(e, SessionOpened)}
    assert {walk.tries[1].session, walk.tries[2].session} == opened


async def test_a_hop_to_the_labs_own_server(lab) -> None:
    """smtp1.syr.edu's MX port takes a hop from mail.northpole.org: the queue ID it announces is
    the one the hop reports, and the message lands in the mailbox."""
    bus = EventBus()
    sub = lab.bus.subscribe()
    result = await send_hop(helo="mail.northpole.org", source_ip="127.0.0.3", dest_ip="127.0.0.1",
                            dest_port=lab.ports.smtp, sender="santa@northpole.org",
                            recipients=["mafudge@syr.edu", "tajorgen@syr.edu"],
                            message=b"Subject: from the pole\r\n\r\nHo ho ho.\r\n..\r\n", bus=bus,
                            clock=Clock(), session="t/smtp-out/1", host="mail.northpole.org", timeout=10.0)
    assert not result.error and result.accepted == ["mafudge@syr.edu", "tajorgen@syr.edu"]
    assert "PIPELINING" in result.extensions and result.peer_queue_id
    queued = await async_wait_for(lambda: [e for e in sub.drain() if isinstance(e, Queued)
                                           and e.host == "smtp1.syr.edu"])
    assert queued[0].queue_id == result.peer_queue_id
    [message] = await async_wait_for(lambda: maildir_messages(lab.state.root, "tajorgen@syr.edu"))
    assert message["Subject"] == "from the pole" and message.get_payload() == "Ho ho ho.\n..\n"


async def test_a_hop_to_postfix_smtp_sink(tmp_path: Path) -> None:
    sink = shutil.which("smtp-sink")
    if sink is None:
        pytest.skip("Postfix's smtp-sink is not installed")
    port = free_port()
    as_user = ["-u", "nobody"] if os.geteuid() == 0 else []       # smtp-sink will not run as root
    proc = await asyncio.create_subprocess_exec(sink, *as_user, f"127.0.0.1:{port}", "10",
                                                stdout=asyncio.subprocess.DEVNULL)

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        await async_wait_for(listening)
        result = await hop(port, recipients=["bob@luxsci.net", "ann@luxsci.net"])
        assert not result.error and result.accepted == ["bob@luxsci.net", "ann@luxsci.net"]
        assert "PIPELINING" in result.extensions
    finally:
        proc.terminate()
        await proc.wait()


async def test_a_relay_hop_event_names_its_session_and_the_next_hosts_queue_id(lab) -> None:
    """Issue 15, item 5: santa submits at mail.northpole.org, which relays to smtp1.syr.edu; the
    MxTried of that hop carries the smtp-out session that made it and smtp1's queue ID, as
    smtp1 queued it, with no transcript to read."""
    sub = lab.bus.subscribe()
    seen: list = []

    def submit() -> dict:
        with smtplib.SMTP("127.0.0.3", lab.ports.submission, timeout=10) as s:
            s.login("santa@northpole.org", "maillab")
            return s.sendmail("santa@northpole.org", ["mafudge@syr.edu"], b"Subject: hop\r\n\r\nx\r\n")

    assert await asyncio.to_thread(submit) == {}

    def hops() -> list[MxTried]:
        seen.extend(sub.drain())
        return [e for e in seen if isinstance(e, MxTried) and e.host == "mail.northpole.org"
                and e.result == "delivered"]

    [tried] = await async_wait_for(hops)
    queued = [e for e in seen if isinstance(e, Queued) and e.host == "smtp1.syr.edu"]
    assert tried.peer_queue_id and [q.queue_id for q in queued] == [tried.peer_queue_id]
    opened = [e for e in seen if isinstance(e, SessionOpened) and e.session == tried.session]
    assert [(o.protocol, o.host) for o in opened] == [("smtp-out", "mail.northpole.org")]


async def test_relay_hop_goes_on_after_a_host_that_will_not_talk_and_stops_at_a_refusal() -> None:
    """A 421 greeting sends every recipient to the next MX (RFC 5321 §5.1); a 550 to one RCPT
    there is final for it and is not tried further."""
    port = free_port()
    busy = await asyncio.start_server(_greet_busy, "127.0.0.1", port)
    handler = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="mx2.test"), "127.0.0.2", port)

    async def addresses(name: str) -> list[str]:
        return {"mx1.test": ["127.0.0.1"], "mx2.test": ["127.0.0.2"]}[name]

    try:
        walk = await relay_hop(["mx1.test", "mx2.test"], addresses, port=port, helo="smtp1.syr.edu",
                               source_ip=None, sender="mafudge@syr.edu",
                               recipients=["nobody@luxsci.net", "bob@luxsci.net"], message=MESSAGE,
                               bus=EventBus(), clock=Clock(), host="smtp1.syr.edu", queue_id="Q2", timeout=5.0)
    finally:
        for s in (busy, server):
            s.close()
            await s.wait_closed()
    assert [(t.mx, t.result, t.reason) for t in walk.tries] == [
        ("mx1.test", "deferred", "421 4.3.2 too busy"), ("mx2.test", "delivered", "250 2.0.0 Ok: queued as 4XyZ12")]
    assert walk.failures == [f"host mx1.test[127.0.0.1]:{port} said: 421 4.3.2 too busy"]
    assert {r: (d.mx, d.reply.code) for r, d in walk.decided.items()} == {
        "nobody@luxsci.net": ("mx2.test", 550), "bob@luxsci.net": ("mx2.test", 250)}
    assert handler.received[0]["rcpts"] == ["bob@luxsci.net"]


async def _greet_busy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"421 4.3.2 too busy\r\n")
    await reader.readline()                     # the client's QUIT
    writer.close()
