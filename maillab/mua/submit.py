"""Message submission by the lab's MUA: one SMTP session to a submission server, and what it meant.

`submit` hands a message to a server (RFC 6409 submission, or any SMTP
server) with the lab's SMTP client (`smtp.client.send_hop`), in the TLS way
asked — `may` (STARTTLS when offered), `starttls` (required), `tls` (TLS from
the first octet, RFC 8314) or `plain` — verifying the certificate against the
CA given, and with AUTH when credentials are given.  Each line of the dialogue
goes to `on_line(marker, text)` as it happens, marked as swaks marks them:
`->`/`<-` in plaintext, `~>`/`<~` under TLS, `===` for the client's own remarks.

`verdict` reads the session's result as one outcome for the shell: an exit
status (`EXIT_*`: 0 only when every recipient got a positive reply) and one
line that says why, naming the reply that decided it.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

from ..base.clock import Clock
from ..base.events import EventBus, Notice, SessionLine
from ..smtp.client import send_hop
from ..smtp.client_protocol import Credentials, HopResult, Mode
from ..smtp.replies import Reply

TlsWay = Literal["may", "starttls", "tls", "plain"]
LineSink = Callable[[str, str], None]

EXIT_OK = 0
EXIT_CONNECT = 3         # no session: refused, timed out, unknown host
EXIT_TLS = 4             # TLS required and not offered, or the handshake / certificate failed
EXIT_AUTH = 5            # authentication failed (535) or required and not done (530)
EXIT_RELAY = 6           # relay denied (554 5.7.1 at RCPT TO)
EXIT_TOO_BIG = 7         # message too big (552)
EXIT_REFUSED = 8         # a recipient refused (5xx), or the message refused at DATA
EXIT_TEMPORARY = 9       # a 4xx: not accepted now, try later

EXIT_CODES = {EXIT_OK: "every recipient accepted", EXIT_CONNECT: "connection failed",
              EXIT_TLS: "TLS failed", EXIT_AUTH: "authentication failed or required",
              EXIT_RELAY: "relay denied", EXIT_TOO_BIG: "message too big",
              EXIT_REFUSED: "a recipient or the message refused", EXIT_TEMPORARY: "temporary failure (4xx)"}

_MODES: dict[TlsWay, Mode] = {"may": "may", "starttls": "starttls", "tls": "tls", "plain": "plain"}
_MARKS = {"client": (" ->", " ~>"), "server": ("<- ", "<~ "), "note": ("===", "===")}


@dataclass(frozen=True, slots=True)
class Server:
    """Where to submit: an address to connect to, and the name its certificate must carry."""
    address: str
    port: int
    name: str = ""          # for TLS verification ("" = the address itself)

    def __str__(self) -> str:
        return f"{self.name or self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Verdict:
    status: int             # one of EXIT_*
    line: str               # one line for the user


def _verified(ssl_object: ssl.SSLObject | None, name: str) -> str:
    """What a finished handshake is worth here: the client context verifies the chain and the
    name (CERT_REQUIRED, check_hostname), so a session that got this far is Verified."""
    return "Verified"


async def submit(server: Server, sender: str, recipients: Sequence[str], message: bytes, *,
                 tls: TlsWay, context: ssl.SSLContext | None, helo: str,
                 credentials: Credentials | None = None, timeout: float = 30.0,
                 on_line: LineSink | None = None) -> HopResult:
    """One submission session; never raises for what the network or the server does."""
    bus, clock = EventBus(), Clock()
    sub = bus.subscribe(kinds=(SessionLine, Notice))
    under_tls = tls == "tls"

    def show(events: Sequence[object]) -> None:
        nonlocal under_tls
        for ev in events:
            if isinstance(ev, Notice):
                under_tls = True            # "Verified TLS connection established to ...": a note follows
            elif isinstance(ev, SessionLine) and on_line is not None:
                marker = _MARKS.get(ev.direction, ("===", "==="))[under_tls]
                on_line(marker, ev.text)

    async def printer() -> None:
        while True:
            show(await sub.next_batch())

    if on_line is not None:
        on_line("===", f"Trying {server.address}:{server.port}...")
    task = asyncio.create_task(printer())
    try:
        result = await send_hop(helo=helo, source_ip=None, dest_ip=server.address, dest_port=server.port,
                                sender=sender, recipients=recipients, message=message, bus=bus,
                                clock=clock, session="send", host=helo, timeout=timeout,
                                mode=_MODES[tls], credentials=credentials,
                                tls_context=context if tls != "plain" else None,
                                server_hostname=(server.name or server.address) if tls != "plain" else None,
                                judge=_verified)
    finally:
        task.cancel()
        show(sub.drain())
        sub.close()
    return result


def verdict(result: HopResult, recipients: Sequence[str]) -> Verdict:
    """The outcome of a session for the shell: an exit status and one line."""
    if not result.connected:
        return Verdict(EXIT_CONNECT, f"connection failed: {result.error}")
    decided = [(rcpt, result.rcpt_replies.get(rcpt)) for rcpt in recipients]
    refused = [(rcpt, reply) for rcpt, reply in decided if reply is None or not reply.is_positive]
    if not refused:
        queued = f", queued as {result.peer_queue_id}" if result.peer_queue_id else ""
        n = len(recipients)
        return Verdict(EXIT_OK, f"sent to {n} recipient{'s' if n != 1 else ''}{queued}")
    rcpt, reply = refused[0]
    stage = result.rcpt_stage.get(rcpt, "")
    if reply is None:
        why = result.error or "the session ended before the server answered"
        return Verdict(EXIT_TLS if "TLS" in why else EXIT_TEMPORARY, f"not sent: {why}")
    said = f"{reply.code} {reply.text}"
    others = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
    where = f"{stage} for <{rcpt}>{others}" if stage == "RCPT TO" else stage or "the session"
    return Verdict(_status(reply, stage), f"{_cause(reply, stage)} at {where}: {said}")


def _status(reply: Reply, stage: str) -> int:
    if stage == "STARTTLS" or reply.enhanced == "4.7.4":
        return EXIT_TLS
    if stage == "AUTH" or reply.code in (530, 535, 538) or reply.enhanced in ("5.7.0", "5.7.8", "5.7.11"):
        return EXIT_AUTH
    if reply.code == 552 or reply.enhanced in ("5.3.4", "5.2.3"):
        return EXIT_TOO_BIG
    if reply.is_transient:
        return EXIT_TEMPORARY
    if stage == "RCPT TO" and reply.enhanced == "5.7.1" and "relay" in reply.text.lower():
        return EXIT_RELAY
    return EXIT_REFUSED


def _cause(reply: Reply, stage: str) -> str:
    return {EXIT_TLS: "TLS failed", EXIT_AUTH: "authentication failed" if stage == "AUTH" or reply.code == 535
            else "authentication required", EXIT_TOO_BIG: "message too big", EXIT_TEMPORARY: "deferred",
            EXIT_RELAY: "relay denied"}.get(_status(reply, stage), "refused")
