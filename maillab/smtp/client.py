"""The outbound SMTP client on asyncio: one connection per try, one try per MX address.

`send_hop` runs a `ClientConnection` (the sans-IO dialogue of
`client_protocol`) over one TCP connection: it connects from the host's own
address with a time-out, bounds every read and write by `timeout` (in the
spirit of RFC 5321 §4.5.3.2; the 221 to QUIT gets `QUIT_TIMEOUT`, the outcome
being decided by then), does the TLS the dialogue asks for (mode "tls": from
the first octet; "starttls" and "may": when the protocol's `StartTls` comes;
once established, what it is and what the certificate was worth (`judge(ssl_object,
name)`, outbound_tls.OutboundTls.trust) go in the result, a transcript note and
Postfix's maillog line "Verified TLS connection established to …"), and puts
the session on the bus: opened, each line, closed with its reason — a refused
or timed-out connect too, so each try shows.  It never raises for anything
the network or the peer does: that is a `HopResult` with `error` set.

`relay_hop` walks a domain's MX hosts best first (RFC 5321 §5.1), resolving
each name when its turn comes and trying each of its addresses, until every
recipient is decided; a recipient goes on to the next address when it was not
decided, or when the host would not talk to us (4xx to the greeting, EHLO,
HELO or STARTTLS).  Every try is an `MxTried` on the bus, published as it
ends, with the session that made it and the peer's queue ID, and kept in the
`RelayResult`, failed ones with their reason; a failed connection also gets
Postfix's maillog line ("connect to smtp1.syr.edu[127.0.0.1]:25: Connection
refused").
"""

from __future__ import annotations

import asyncio
import itertools
import os
import ssl
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

from ..base.clock import Clock
from ..base.events import EventBus, MxTried, Notice, SessionClosed, SessionLine, SessionOpened
from ..base.sansio import Closed, StartTls
from ..net.tls import TlsInfo
from .client_protocol import ClientConnection, Credentials, Envelope, HopResult, Mode, Rcpt
from .outbound_tls import Level, OutboundTls
from .replies import Reply

QUIT_TIMEOUT = 2.0   # seconds to wait for the 221: the mail is already handed over
READ_SIZE = 65536
_TALK_STAGES = ("CONNECT", "EHLO", "HELO", "STARTTLS")   # a 4xx here: the host would not talk to us

_out_sessions = itertools.count(1)


class Unresolved(Exception):
    """An MX name without addresses; the text is the reason, in Postfix's words."""


async def send_hop(*, helo: str, source_ip: str | None, dest_ip: str, dest_port: int,
                   sender: str, recipients: Sequence[str | Rcpt], message: bytes,
                   bus: EventBus, clock: Clock, session: str, host: str,
                   timeout: float = 30.0, mode: Mode = "plain",
                   credentials: Credentials | None = None, ret: str = "", envid: str = "",
                   tls_context: ssl.SSLContext | None = None,
                   server_hostname: str | None = None,
                   judge: Callable[[ssl.SSLObject | None, str], str] | None = None) -> HopResult:
    """Hand `message` to the MTA at dest_ip:dest_port for `recipients`."""
    rcpts = tuple(r if isinstance(r, Rcpt) else Rcpt(r) for r in recipients)
    conn = ClientConnection(helo, Envelope(sender, rcpts, ret, envid), message, mode=mode,
                            credentials=credentials)
    if mode != "plain" and tls_context is None:
        raise ValueError(f"mode {mode!r} needs a TLS context")
    peer = f"{dest_ip}:{dest_port}"
    local = (source_ip, 0) if source_ip else None
    implicit = tls_context if mode == "tls" else None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                dest_ip, dest_port, local_addr=local, ssl=implicit,
                server_hostname=server_hostname if implicit else None)
    except TimeoutError:
        return _unreached(f"connect to {peer}: timeout", bus, clock, session, host, peer)
    except (OSError, ssl.SSLError) as exc:
        return _unreached(f"connect to {peer}: {_reason(exc)}", bus, clock, session, host, peer)
    bus.publish(SessionOpened(clock.now(), session, "smtp-out", host, peer))

    def publish() -> None:
        for direction, text in conn.transcript():
            bus.publish(SessionLine(clock.now(), session, host, direction, text))

    def established() -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        info = TlsInfo.of(ssl_object)
        conn.result.tls_summary = info.summary
        conn.result.tls_trust = judge(ssl_object, server_hostname or dest_ip) if judge is not None else "Untrusted"
        publish()
        bus.publish(SessionLine(clock.now(), session, host, "note", f"({info.note}, {conn.result.tls_trust})"))
        relay = f"{server_hostname}[{dest_ip}]:{dest_port}" if server_hostname else peer
        bus.publish(Notice(clock.now(), host, "smtp",
                           f"{conn.result.tls_trust} TLS connection established to {relay}: {info.summary}"))

    if implicit is not None:
        established()

    while True:
        publish()
        out = conn.data_to_send()
        if out:
            try:
                writer.write(out)
                async with asyncio.timeout(timeout):
                    await writer.drain()
            except TimeoutError:
                conn.timed_out()
            except OSError as exc:
                conn.connection_lost(_reason(exc))
        event = conn.next_event()
        if isinstance(event, Closed):
            break
        if isinstance(event, StartTls):
            try:
                async with asyncio.timeout(timeout):
                    await writer.start_tls(tls_context, server_hostname=server_hostname)  # type: ignore[arg-type]
                established()               # its note before the EHLO that tls_started() queues
                conn.tls_started()
            except TimeoutError:
                conn.timed_out()
            except ssl.SSLCertVerificationError as exc:      # Postfix's words, then OpenSSL's
                conn.connection_lost(f"TLS handshake: Server certificate not verified ({exc.verify_message})")
            except (OSError, ssl.SSLError) as exc:
                conn.connection_lost(f"TLS handshake: {_reason(exc)}")
            continue
        try:
            async with asyncio.timeout(min(timeout, QUIT_TIMEOUT) if conn.settled else timeout):
                data = await reader.read(READ_SIZE)
        except TimeoutError:
            conn.timed_out()
            continue
        except OSError as exc:
            conn.connection_lost(_reason(exc))
            continue
        conn.receive_data(data)
    publish()
    writer.close()
    try:
        async with asyncio.timeout(QUIT_TIMEOUT):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        pass
    bus.publish(SessionClosed(clock.now(), session, host, event.reason))
    return conn.result


@dataclass(frozen=True, slots=True)
class Decided:
    """A recipient's final reply and the MX address that gave it."""
    reply: Reply
    relay: str           # "mx1.luxsci.net[127.0.0.5]:25"
    mx: str
    dsn: bool = False    # that host offered DSN: the recipient's NOTIFY went along (RFC 3461 §5.2.2)


@dataclass
class RelayResult:
    decided: dict[str, Decided] = field(default_factory=dict)
    tries: list[MxTried] = field(default_factory=list)      # every address tried, in order
    failures: list[str] = field(default_factory=list)       # the reason of each failed try
    last_error: str = "no MX host answered"
    last_dsn: str = "4.4.1"

    @property
    def peer_queue_id(self) -> str:
        """The queue ID of the try that delivered, "" if none did."""
        return next((t.peer_queue_id for t in reversed(self.tries) if t.result == "delivered"), "")


async def relay_hop(mx_hosts: Sequence[str], addresses: Callable[[str], Awaitable[list[str]]], *,
                    port: int, helo: str, source_ip: str | None, sender: str,
                    recipients: Sequence[str | Rcpt], message: bytes, bus: EventBus, clock: Clock,
                    host: str, queue_id: str, timeout: float = 30.0, ret: str = "",
                    envid: str = "", tls: OutboundTls | None = None, level: Level = "none") -> RelayResult:
    """Try `mx_hosts` in order (`addresses(name)` resolves one, raising `Unresolved`), with
    TLS at `level` (outbound_tls; `tls` gives its contexts and judges certificates)."""
    walk = RelayResult()
    rcpts = {r.address: r for r in (x if isinstance(x, Rcpt) else Rcpt(x) for x in recipients)}
    remaining = list(rcpts)

    def tried(mx: str, address: str, result: str, reason: str, session: str = "",
              peer_queue_id: str = "", hop: HopResult | None = None) -> None:
        secured = f"{hop.tls_trust} TLS, {hop.tls_summary}" if hop is not None and hop.tls_summary else ""
        event = MxTried(clock.now(), host, queue_id, mx, address, result, reason, session, peer_queue_id,
                        secured)
        walk.tries.append(event)
        bus.publish(event)

    for name in mx_hosts:
        try:
            ips = await addresses(name)
        except Unresolved as e:
            walk.last_error, walk.last_dsn = str(e), "4.4.3"
            walk.failures.append(walk.last_error)
            tried(name, "", "deferred", walk.last_error)
            continue
        for ip in ips:
            relay, session = f"{name}[{ip}]:{port}", f"{host}/smtp-out/{next(_out_sessions)}"
            secure = tls if level != "none" else None
            hop = await send_hop(helo=helo, source_ip=source_ip, dest_ip=ip, dest_port=port, sender=sender,
                                 recipients=[rcpts[r] for r in remaining], message=message, bus=bus,
                                 clock=clock, session=session, host=host, timeout=timeout, ret=ret,
                                 envid=envid, mode=secure.mode(level) if secure else "plain",
                                 tls_context=secure.context(level) if secure else None,
                                 server_hostname=name if secure else None,
                                 judge=secure.trust if secure else None)
            replies = [x for x in (hop.rcpt_replies.get(r) for r in remaining) if x is not None]
            if hop.error:
                result = "refused" if not hop.connected and "refused" in hop.error.lower() else "deferred"
                tried(name, f"{ip}:{port}", result,
                      hop.error.partition(": ")[2] if not hop.connected else hop.error, session, hop=hop)
            else:
                tried(name, f"{ip}:{port}", *_hop_result(replies), session, hop.peer_queue_id, hop)
            still: list[str] = []
            for r in remaining:
                reply = hop.rcpt_replies.get(r)
                if reply is None:
                    still.append(r)
                elif reply.is_transient and hop.rcpt_stage.get(r) in _TALK_STAGES:
                    walk.last_error, walk.last_dsn = f"host {relay} said: {reply}", reply.enhanced or "4.0.0"
                    still.append(r)
                else:
                    walk.decided[r] = Decided(reply, relay, name, "DSN" in hop.extensions)
            if hop.error:
                walk.last_error, walk.last_dsn = hop.error, "4.4.1" if not hop.connected else "4.4.2"
                # Postfix's words for a failed try, e.g. "connect to smtp1.syr.edu[127.0.0.1]:25: Connection refused"
                text = (f"connect to {relay}: {hop.error.partition(': ')[2]}" if not hop.connected
                        else f"{relay}: {hop.error}")
                bus.publish(Notice(clock.now(), host, "smtp", text, queue_id))
                walk.failures.append(text)
            elif still and walk.last_error.startswith(f"host {relay} said:"):
                walk.failures.append(walk.last_error)
            remaining = still
            if not remaining:
                return walk
    return walk


def _hop_result(replies: list[Reply]) -> tuple[str, str]:
    """(result, reason) of a hop that talked SMTP, from its replies to our recipients."""
    if not replies:
        return "deferred", "no reply to any recipient"
    taken = next((r for r in replies if r.is_positive), None)
    if taken is not None:
        return "delivered", str(taken)
    refused = [r for r in replies if not r.is_permanent]
    return ("deferred", str(refused[0])) if refused else ("bounced", str(replies[0]))


def _unreached(error: str, bus: EventBus, clock: Clock, session: str, host: str, peer: str) -> HopResult:
    """A try that never got a connection still is a session row, closed with its reason."""
    now = clock.now()
    bus.publish(SessionOpened(now, session, "smtp-out", host, peer))
    bus.publish(SessionLine(now, session, host, "note", error))
    bus.publish(SessionClosed(now, session, host, error))
    return HopResult(error=error, temporary=True)


def _reason(exc: OSError | ssl.SSLError) -> str:
    return os.strerror(exc.errno) if exc.errno else (str(exc) or type(exc).__name__)
