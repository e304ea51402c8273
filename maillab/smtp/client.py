"""The outbound SMTP client: one relay hop, one message, one connection.

`send_hop` speaks RFC 5321 to the next MTA: greeting, EHLO (HELO when EHLO
gets 5xx, §4.1.4), MAIL FROM with the ESMTP parameters the server offered
(SIZE RFC 1870, BODY=8BITMIME RFC 6152, SMTPUTF8 RFC 6531), one RCPT TO per
recipient, DATA with the body dot-stuffed (§4.5.2), QUIT.  Commands go one at
a time (no PIPELINING), so the transcript reads like a lesson.

Invariants: `send_hop` never raises for anything the network or the peer
does (refused, reset, silence, garbage); that becomes a `HopResult` with
`error` set and `temporary` true; a refused or timed-out connect is still a
session on the bus (opened and closed with its reason), so each try shows.
Every read is bounded by `timeout` (in the spirit of §4.5.3.2).  Each
recipient ends with at most one reply in `rcpt_replies`: its RCPT reply if
refused there, else the reply that decided it for everyone (greeting,
EHLO/HELO, MAIL FROM, DATA or end of data).  A recipient without a reply was
not decided; with `error` set it is to be retried.  The transcript goes on
the bus; the message body is summarised in one note, never dumped.
Arguments carrying CR or LF are our bug: ValueError.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from typing import Sequence

from maillab.clock import Clock
from maillab.events import Direction, EventBus, SessionClosed, SessionLine, SessionOpened
from maillab.smtp.replies import ProtocolError, Reply, ReplyParser

QUIT_TIMEOUT = 2.0   # seconds to wait for the 221: the mail is already handed over

_QUEUED_AS = re.compile(r"\bqueued as\s+<?([^\s<>;,]+)", re.I)
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass
class HopResult:
    """What one hop achieved; see the module docstring for how to read it."""

    connected: bool = False
    greeting: Reply | None = None
    rcpt_replies: dict[str, Reply] = field(default_factory=dict)
    error: str = ""          # connection-level failure, "" if none
    temporary: bool = False  # whether `error` is worth a retry
    peer_queue_id: str = ""
    # which command each reply in `rcpt_replies` answered: "CONNECT" (the
    # greeting), "EHLO", "HELO", "MAIL FROM", "RCPT TO", "DATA", "END-OF-MESSAGE"
    rcpt_stage: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)  # EHLO keyword -> params

    @property
    def accepted(self) -> list[str]:
        """Recipients the peer took responsibility for (positive final reply)."""
        return [rcpt for rcpt, reply in self.rcpt_replies.items() if reply.is_positive]


class _HopFailed(Exception):
    """Ends the conversation with a connection-level error (always temporary)."""


class _Conversation:
    """One connection's reader, writer, reply parser and transcript."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 bus: EventBus, clock: Clock, session: str, host: str, timeout: float) -> None:
        self.reader, self.writer = reader, writer
        self.bus, self.clock, self.session, self.host = bus, clock, session, host
        self.timeout = timeout
        self.parser = ReplyParser()
        self.replies: list[Reply] = []
        self.stage = "CONNECT"

    def log(self, direction: Direction, text: str) -> None:
        self.bus.publish(SessionLine(self.clock.now(), self.session, self.host, direction, text))

    async def send(self, command: str, stage: str) -> None:
        self.stage = stage
        self.log("client", command)
        await self.write(command.encode("utf-8") + b"\r\n")

    async def write(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            async with asyncio.timeout(self.timeout):
                await self.writer.drain()
        except TimeoutError:
            raise _HopFailed(f"timeout after {self.stage}") from None
        except OSError as exc:
            raise _HopFailed(f"lost connection after {self.stage} ({_reason(exc)})") from None

    async def reply(self, timeout: float | None = None) -> Reply:
        while not self.replies:
            try:
                async with asyncio.timeout(timeout or self.timeout):
                    data = await self.reader.read(8192)
            except TimeoutError:
                raise _HopFailed(f"timeout after {self.stage}") from None
            except OSError as exc:
                raise _HopFailed(f"lost connection after {self.stage} ({_reason(exc)})") from None
            if not data:
                raise _HopFailed(f"lost connection after {self.stage}")
            try:
                self.replies.extend(self.parser.feed(data))
            except ProtocolError as exc:
                raise _HopFailed(f"protocol error after {self.stage}: {exc}") from None
        reply = self.replies.pop(0)
        for line in reply.wire_lines():
            self.log("server", line)
        return reply

    async def command(self, command: str, stage: str) -> Reply:
        await self.send(command, stage)
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(QUIT_TIMEOUT):
                await self.writer.wait_closed()
        except (OSError, TimeoutError):
            pass


async def send_hop(*, helo: str, source_ip: str | None, dest_ip: str, dest_port: int,
                   sender: str, recipients: Sequence[str], message: bytes,
                   bus: EventBus, clock: Clock, session: str, host: str,
                   timeout: float = 30.0, eightbit: bool = False,
                   smtputf8: bool = False) -> HopResult:
    """Hand `message` to the MTA at dest_ip:dest_port for `recipients`."""
    for value in (helo, sender, *recipients):
        if "\r" in value or "\n" in value:
            raise ValueError(f"CR or LF in SMTP argument {value!r}")
    result = HopResult()
    peer = f"{dest_ip}:{dest_port}"
    local = (source_ip, 0) if source_ip else None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(dest_ip, dest_port, local_addr=local)
    except TimeoutError:
        return _unreached(result, f"connect to {peer}: timeout", bus, clock, session, host, peer)
    except OSError as exc:
        return _unreached(result, f"connect to {peer}: {_reason(exc)}", bus, clock, session, host, peer)
    result.connected = True
    bus.publish(SessionOpened(clock.now(), session, "smtp-out", host, peer))
    conv = _Conversation(reader, writer, bus, clock, session, host, timeout)
    try:
        await _converse(conv, result, helo=helo, sender=sender, recipients=recipients,
                        message=message, eightbit=eightbit, smtputf8=smtputf8)
        reason = "QUIT"
    except _HopFailed as exc:
        _failed(result, str(exc))
        reason = str(exc)
    await conv.close()
    bus.publish(SessionClosed(clock.now(), session, host, reason))
    return result


async def _converse(conv: _Conversation, result: HopResult, *, helo: str, sender: str,
                    recipients: Sequence[str], message: bytes,
                    eightbit: bool, smtputf8: bool) -> None:
    def decide(rcpts: Sequence[str], reply: Reply, stage: str) -> None:
        for rcpt in rcpts:
            result.rcpt_replies[rcpt] = reply
            result.rcpt_stage[rcpt] = stage

    async def refused(reply: Reply, stage: str, expected: int) -> bool:
        """True (after QUIT) if `reply` ends the hop for everyone still undecided."""
        if reply.code == expected or (expected == 2 and reply.code // 100 == 2):
            return False
        if not (reply.is_transient or reply.is_permanent):
            raise _HopFailed(f"protocol error after {stage}: unexpected reply {reply}")
        decide([r for r in recipients if r not in result.rcpt_replies], reply, stage)
        await _quit(conv)
        return True

    greeting = result.greeting = await conv.reply()
    if await refused(greeting, "CONNECT", 220):
        return

    reply = await conv.command(f"EHLO {helo}", "EHLO")
    if reply.is_permanent:   # an old server: RFC 5321 §4.1.4
        reply = await conv.command(f"HELO {helo}", "HELO")
        if await refused(reply, "HELO", 250):
            return
    elif await refused(reply, "EHLO", 250):
        return
    else:
        result.extensions = _extensions(reply)

    if message.count(b"\n") != message.count(b"\r\n"):
        message = _BARE_LF.sub(b"\r\n", message)
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    params = []
    if "SIZE" in result.extensions:
        limit = result.extensions["SIZE"]
        if limit.isdigit() and 0 < int(limit) < len(message):
            conv.log("note", f"message size {len(message)} exceeds size limit {limit} "
                             "of the server: not sent")
            decide(recipients, Reply(552, (f"5.3.4 Message size {len(message)} exceeds "
                                           f"fixed limit of {limit} bytes",)), "MAIL FROM")
            await _quit(conv)
            return
        params.append(f"SIZE={len(message)}")
    if eightbit and "8BITMIME" in result.extensions:
        params.append("BODY=8BITMIME")
    if smtputf8 and "SMTPUTF8" in result.extensions:
        params.append("SMTPUTF8")
    reply = await conv.command(" ".join([f"MAIL FROM:<{sender}>", *params]), "MAIL FROM")
    if await refused(reply, "MAIL FROM", 2):
        return

    accepted: list[str] = []
    for rcpt in recipients:
        reply = await conv.command(f"RCPT TO:<{rcpt}>", "RCPT TO")
        if reply.code // 100 == 2:
            accepted.append(rcpt)
        elif reply.is_transient or reply.is_permanent:
            decide([rcpt], reply, "RCPT TO")
        else:
            raise _HopFailed(f"protocol error after RCPT TO: unexpected reply {reply}")
    if not accepted:
        await _quit(conv)
        return

    reply = await conv.command("DATA", "DATA")
    if await refused(reply, "DATA", 354):
        return
    lines = message.count(b"\n")
    conv.stage = "END-OF-MESSAGE"
    conv.log("note", f"(message body: {lines} lines, {len(message)} bytes)")
    conv.log("client", ".")
    await conv.write(_dot_stuff(message) + b".\r\n")
    reply = await conv.reply()
    if await refused(reply, "END-OF-MESSAGE", 2):
        return
    decide(accepted, reply, "END-OF-MESSAGE")
    match = _QUEUED_AS.search(reply.text)
    result.peer_queue_id = match.group(1) if match else ""
    await _quit(conv)


async def _quit(conv: _Conversation) -> None:
    """Say QUIT and wait briefly for the 221; the outcome is already decided."""
    try:
        await conv.send("QUIT", "QUIT")
        await conv.reply(timeout=min(conv.timeout, QUIT_TIMEOUT))
    except _HopFailed:
        pass


def _dot_stuff(message: bytes) -> bytes:
    """RFC 5321 §4.5.2: a line that starts with "." gets one more."""
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def _extensions(reply: Reply) -> dict[str, str]:
    """EHLO keywords (upper case) and their parameters, RFC 5321 §4.1.1.1."""
    found: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            found[keyword.upper()] = params.strip()
    return found


def _unreached(result: HopResult, error: str, bus: EventBus, clock: Clock, session: str,
               host: str, peer: str) -> HopResult:
    """A try that never got a connection still is a session row, closed with its reason."""
    now = clock.now()
    bus.publish(SessionOpened(now, session, "smtp-out", host, peer))
    bus.publish(SessionLine(now, session, host, "note", error))
    bus.publish(SessionClosed(now, session, host, error))
    return _failed(result, error)


def _failed(result: HopResult, error: str) -> HopResult:
    result.error = error
    result.temporary = True
    return result


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else (str(exc) or type(exc).__name__)
