"""The lab DNS server: thin asyncio adapters around `Authority`.

UDP: one datagram in, one reply out (RFC 1035 §4.2.1).  TCP: each message is
framed by a 2-byte length (RFC 1035 §4.2.2); a connection may carry several
queries, answered in order (RFC 7766 §6.2.1).  Every answered query publishes a
`DnsQuery` event, so the TUI and the maillog see each look-up.

Invariants: no input can crash the server or make it wait forever: a frame is
at most 65535 octets by construction, a TCP connection idle (or stalled
mid-frame) for `IDLE_TIMEOUT` seconds is closed, and at most `MAX_TCP_CLIENTS`
connections are served at once: a new one then closes the oldest idle one.  Packets `Authority` can not answer are
dropped.  `stop()` closes the UDP endpoint, the listener and every open
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

from ..base.clock import Clock
from ..base.events import DnsQuery, EventBus
from .authority import Authority, QueryInfo

IDLE_TIMEOUT = 10.0          # seconds; RFC 7766 §6.2.3 suggests "a few seconds"
MAX_TCP_CLIENTS = 100
UDP_MAX = 4096               # our ceiling for UDP replies (EDNS clients ask for less)


class DnsServer:
    def __init__(self, authority: Authority, bus: EventBus, clock: Clock,
                 host: str = "127.0.0.1", port: int = 1053) -> None:
        self.authority = authority
        self.bus = bus
        self.clock = clock
        self.host = host
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._idle: set[asyncio.Task[None]] = set()   # waiting for the next query's length

    @property
    def endpoints(self) -> list[str]:
        return [f"dns udp {self.host}:{self.port}", f"dns tcp {self.host}:{self.port}"]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self.host, self.port))
        try:
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port,
                                                   reuse_address=True)
        except OSError:
            self._udp.close()
            self._udp = None
            raise

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
        for task, writer in list(self._clients.items()):
            writer.close()
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None

    # -- shared ----------------------------------------------------------------

    def _publish(self, info: QueryInfo, peer: tuple[str, int], transport: str) -> None:
        self.bus.publish(DnsQuery(time=self.clock.now(), client=f"{peer[0]}:{peer[1]}",
                                  transport=transport, name=info.name, rdtype=info.rdtype,
                                  rcode=info.rcode, answers=info.answers))

    # -- TCP -------------------------------------------------------------------

    def _close_oldest_idle(self) -> bool:
        """Make room by closing the longest-open connection waiting between queries
        (RFC 7766 §6.2.3); False when every connection is mid-query."""
        for task, writer in self._clients.items():     # oldest first
            if task in self._idle:
                self._idle.discard(task)
                writer.close()                        # its task ends on EOF and leaves _clients
                return True
        return False

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._clients) >= MAX_TCP_CLIENTS and not self._close_oldest_idle():
            writer.close()
            return
        self._clients[task] = writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            while True:
                self._idle.add(task)
                async with asyncio.timeout(IDLE_TIMEOUT):
                    header = await reader.readexactly(2)
                self._idle.discard(task)
                length = int.from_bytes(header, "big")
                if length == 0:
                    break
                async with asyncio.timeout(IDLE_TIMEOUT):
                    wire = await reader.readexactly(length)
                reply, info = self.authority.respond(wire, None)
                if reply is None:
                    if info is not None:
                        self._publish(info, peer, "tcp")
                    continue
                writer.write(len(reply).to_bytes(2, "big") + reply)
                async with asyncio.timeout(IDLE_TIMEOUT):
                    await writer.drain()
                if info is not None:
                    self._publish(info, peer, "tcp")
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, OSError):
            pass
        finally:
            self._clients.pop(task, None)
            self._idle.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply, info = self.server.authority.respond(data, UDP_MAX)
        if reply is None or self.transport is None:
            if info is not None:
                self.server._publish(info, addr, "udp")
            return
        self.transport.sendto(reply, addr)
        if info is not None:
            self.server._publish(info, addr, "udp")

    def error_received(self, exc: Exception) -> None:
        pass        # e.g. ICMP port unreachable from a client that went away
