"""How the lab's MTAs resolve names: real DNS queries to the lab server.

`LabResolver` asks the lab DNS server over UDP (falling back to TCP when the
reply is truncated, RFC 1035 §4.2.1), from the lab host's own address when
`source` is given, so the DNS log shows which host asked.  Each source address
keeps one UDP socket, and replies are matched to queries by ID and question
(RFC 5452 §9.1), so a busy MTA does not open a socket per look-up.

Every look-up goes on the wire, but the CPU work around it is memoized: the
wire form of a question is built once (only the ID changes), the reverse name
of an address once, and a reply is parsed and read (its rcode, the records
asked for, CNAMEs followed) once per distinct reply: the same octets after
the ID parse and read the same.
The memos are bounded and keyed by exact content, so they never go stale.

Invariants: it never consults the system resolver (this machine's resolv.conf
points off the box) and caches nothing, so every look-up reaches the DNS log.
Every failure is a `LookupFailed`: `temporary=True` for what may heal (timeout,
SERVFAIL, network error), `temporary=False` for a definite answer (NXDOMAIN,
REFUSED for a name outside the lab, no usable record).
"""

from __future__ import annotations

import asyncio
import secrets

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

_EDNS_PAYLOAD = 1232
_MEMO_SIZE = 512


def _remember(memo: dict, key: object, value: object) -> None:
    if len(memo) >= _MEMO_SIZE:
        del memo[next(iter(memo))]            # the oldest entry
    memo[key] = value


class LookupFailed(Exception):
    def __init__(self, reason: str, temporary: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


_UNREAD = object()


class _Reply:
    """A parsed reply, the question it answers, and what it says about it (read on first use)."""
    __slots__ = ("response", "question", "said")

    def __init__(self, response: dns.message.Message, question: list) -> None:
        self.response = response
        self.question = question
        self.said: object = _UNREAD         # then: the records, None (NODATA) or a LookupFailed


class _UdpChannel(asyncio.DatagramProtocol):
    """One UDP socket to the lab server, shared by every query from one source address."""

    def __init__(self, parsed: dict[bytes, _Reply]) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, tuple[dns.message.Message, asyncio.Future[_Reply]]] = {}
        self.parsed = parsed           # reply octets after the ID -> that reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 2:
            return
        pending = self.waiting.get(int.from_bytes(data[:2], "big"))
        if pending is None:
            return
        query, future = pending
        known = self.parsed.get(data[2:])
        if known is None:
            try:
                response = dns.message.from_wire(data)
            except dns.exception.DNSException:
                return
            query.id = response.id                  # the ID matched: `waiting` is keyed by it
            if not query.is_response(response):
                return
            known = _Reply(response, query.question)
            _remember(self.parsed, data[2:], known)
        if known.question == query.question and not future.done():
            future.set_result(known)

    def error_received(self, exc: Exception) -> None:
        for _, future in self.waiting.values():
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class LabResolver:
    def __init__(self, server: str = "127.0.0.1", port: int = 1053, timeout: float = 3.0) -> None:
        self.server = server
        self.port = port
        self.timeout = timeout
        self._channels: dict[str | None, _UdpChannel] = {}
        self._questions: dict[tuple[dns.name.Name, dns.rdatatype.RdataType],
                              tuple[dns.message.Message, bytes]] = {}
        self._parsed: dict[bytes, _Reply] = {}
        self._reverse_names: dict[str, dns.name.Name] = {}

    def close(self) -> None:
        for channel in self._channels.values():
            if channel.transport is not None:
                channel.transport.close()
        self._channels.clear()

    def _question(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> tuple[dns.message.Message, bytes]:
        """The query for `qname`/`rdtype` and its wire form; each use sends it with an ID of its own."""
        key = (qname, rdtype)
        question = self._questions.get(key)
        if question is None:
            query = dns.message.make_query(qname, rdtype, use_edns=0, payload=_EDNS_PAYLOAD)
            query.flags &= ~dns.flags.RD                 # the lab server is authoritative only
            question = (query, query.to_wire())
            _remember(self._questions, key, question)
        return question

    async def _udp(self, query: dns.message.Message, wire: bytes, source: str | None) -> _Reply:
        channel = self._channels.get(source)
        if channel is None or channel.transport is None:
            loop = asyncio.get_running_loop()
            _, channel = await loop.create_datagram_endpoint(
                lambda: _UdpChannel(self._parsed), remote_addr=(self.server, self.port),
                local_addr=(source, 0) if source else None)
            self._channels[source] = channel
        while True:
            qid = secrets.randbelow(65536)
            if qid not in channel.waiting:
                break
        future: asyncio.Future[_Reply] = asyncio.get_running_loop().create_future()
        channel.waiting[qid] = (query, future)
        try:
            assert channel.transport is not None
            channel.transport.sendto(qid.to_bytes(2, "big") + wire[2:])
            async with asyncio.timeout(self.timeout):
                reply = await future
        except TimeoutError:
            raise dns.exception.Timeout() from None
        finally:
            channel.waiting.pop(qid, None)
        if reply.response.flags & dns.flags.TC:          # too big for UDP: ask again over TCP
            tcp_query = dns.message.from_wire(secrets.randbelow(65536).to_bytes(2, "big") + wire[2:])
            reply = _Reply(await dns.asyncquery.tcp(tcp_query, self.server, timeout=self.timeout,
                                                    port=self.port, source=source), query.question)
        return reply

    async def mx(self, domain: str, source: str | None = None) -> list[tuple[int, str]]:
        """Mail exchangers of `domain`, best first (RFC 5321 §5.1), names lowercase, no dot."""
        records = await self._records(domain, dns.rdatatype.MX, source)
        if records is None:
            if await self._records(domain, dns.rdatatype.A, source) is None:
                raise LookupFailed(f"{domain}: no MX and no A record", temporary=False)
            return [(0, _host(domain))]                 # the implicit MX, RFC 5321 §5.1
        if any(r.exchange == dns.name.root for r in records):
            raise LookupFailed(f"{domain}: null MX, the domain accepts no mail (RFC 7505)",
                               temporary=False)
        return sorted((r.preference, _host(r.exchange.to_text())) for r in records)

    async def a(self, name: str, source: str | None = None) -> list[str]:
        """IPv4 addresses of `name`; no A record at all is a (permanent) `LookupFailed`."""
        records = await self._records(name, dns.rdatatype.A, source)
        if records is None:
            raise LookupFailed(f"{name}: no A record", temporary=False)
        return [r.address for r in records]

    async def ptr(self, address: str, source: str | None = None) -> str | None:
        """The PTR name of `address`, or None when it has none."""
        qname = self._reverse_names.get(address)
        if qname is None:
            try:
                qname = dns.reversename.from_address(address)
            except (dns.exception.SyntaxError, ValueError):
                raise LookupFailed(f"{address!r} is not an IP address", temporary=False) from None
            _remember(self._reverse_names, address, qname)
        try:
            records = await self._records(qname, dns.rdatatype.PTR, source)
        except LookupFailed as e:
            if e.temporary:
                raise
            return None                                  # NXDOMAIN, or not a lab address
        return _host(records[0].target.to_text()) if records else None

    async def records(self, name: str, rdtype: str, source: str | None = None) -> dns.rrset.RRset | None:
        """The `rdtype` records of `name` ("TXT", "AAAA", ...), CNAMEs followed; None for NODATA;
        NXDOMAIN and the rest raise `LookupFailed` (sender authentication reads them raw)."""
        try:
            kind = dns.rdatatype.from_text(rdtype)
        except dns.exception.DNSException:
            raise LookupFailed(f"{rdtype!r} is not a DNS record type", temporary=False) from None
        return await self._records(name, kind, source)

    async def _records(self, name: str | dns.name.Name, rdtype: dns.rdatatype.RdataType,
                       source: str | None) -> dns.rrset.RRset | None:
        """The records of `name` (CNAMEs followed), None for NODATA; raises on errors."""
        try:
            qname = name if isinstance(name, dns.name.Name) else dns.name.from_text(name)
        except dns.exception.DNSException as e:
            raise LookupFailed(f"{name!r} is not a valid domain name: {e}", temporary=False) from None
        query, wire = self._question(qname, rdtype)
        try:
            reply = await self._udp(query, wire, source)
        except dns.exception.Timeout:
            raise LookupFailed(f"{_Shown(qname)}: DNS timeout ({self.server}:{self.port})",
                               temporary=True) from None
        except (OSError, dns.exception.DNSException) as e:
            raise LookupFailed(f"{_Shown(qname)}: DNS error: {e or type(e).__name__}", temporary=True) from None
        if reply.said is _UNREAD:
            reply.said = _answer(reply.response, qname, query.question[0].rdclass, rdtype)
        said = reply.said
        if isinstance(said, LookupFailed):
            raise LookupFailed(said.reason, said.temporary)       # a fresh one: no traceback piles up
        return said                                                 # type: ignore[return-value]


def _answer(response: dns.message.Message, qname: dns.name.Name, rdclass: dns.rdataclass.RdataClass,
            rdtype: dns.rdatatype.RdataType) -> "dns.rrset.RRset | LookupFailed | None":
    """What `response` says about `qname`/`rdtype`: its records (CNAMEs followed), None for
    NODATA, or the failure to raise."""
    shown = _Shown(qname)
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return LookupFailed(f"{shown}: no such domain (NXDOMAIN)", temporary=False)
    if rcode == dns.rcode.REFUSED:
        return LookupFailed(f"{shown}: not a lab domain (REFUSED)", temporary=False)
    if rcode != dns.rcode.NOERROR:
        return LookupFailed(f"{shown}: DNS answered {dns.rcode.to_text(rcode)}", temporary=True)
    for _ in range(9):                                   # follow the CNAME chain in the answer
        try:
            return response.find_rrset(response.answer, qname, rdclass, rdtype)
        except KeyError:
            pass
        try:
            cname = response.find_rrset(response.answer, qname, rdclass, dns.rdatatype.CNAME)
        except KeyError:
            return None
        qname = cname[0].target
    return None


class _Shown:
    """A name as error messages show it, made only if one is."""

    def __init__(self, name: dns.name.Name) -> None:
        self.name = name

    def __format__(self, spec: str) -> str:
        return format(self.name.to_text(omit_final_dot=True), spec)


def _host(name: str) -> str:
    return name.rstrip(".").lower()
