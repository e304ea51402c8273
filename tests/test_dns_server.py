"""The lab DNS server on loopback: LabResolver, raw sockets, events, and dig."""

import asyncio
import socket
from unittest import mock

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.zone
import pytest

from conftest import async_wait_for
import maillab.dns.server as server_module
from maillab.base.clock import Clock
from maillab.base.events import DnsQuery, EventBus
from maillab.dns import client
from maillab.dns.authority import Authority
from maillab.dns.client import LabResolver, LookupFailed
from maillab.dns.server import DnsServer
from maillab.lab.world import load_world
from netutil import free_port, require_tool

BIG = ("@ IN SOA ns hostmaster 1 3600 600 604800 60\n@ IN NS ns\nns IN A 127.0.0.1\n"
       + "".join(f"many IN A 10.0.{i // 250}.{i % 250}\n" for i in range(100)))


class DnsLab:
    def __init__(self, server: DnsServer, bus: EventBus) -> None:
        self.server, self.bus, self.port = server, bus, server.port
        self.events = bus.subscribe(accept=lambda e: isinstance(e, DnsQuery))
        self.resolver = LabResolver("127.0.0.1", server.port, timeout=2.0)

    def queries(self) -> list[DnsQuery]:
        return self.events.drain()


async def start(authority: Authority) -> DnsLab:
    bus = EventBus()
    server = DnsServer(authority, bus, Clock(), "127.0.0.1", free_port())
    await server.start()
    return DnsLab(server, bus)


@pytest.fixture
async def dns_lab():
    zones = dict(load_world().zones)
    zones["big.test."] = dns.zone.from_text(BIG, origin="big.test.", relativize=False)
    dns_lab = await start(Authority(zones))
    yield dns_lab
    await dns_lab.server.stop()


def frame(wire: bytes) -> bytes:
    return len(wire).to_bytes(2, "big") + wire


async def read_frame(reader: asyncio.StreamReader) -> dns.message.Message:
    length = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 2), "big")
    return dns.message.from_wire(await asyncio.wait_for(reader.readexactly(length), 2))


# -- LabResolver against the server ------------------------------------------------

async def test_endpoints(dns_lab):
    assert dns_lab.server.endpoints == [f"dns udp 127.0.0.1:{dns_lab.port}", f"dns tcp 127.0.0.1:{dns_lab.port}"]


async def test_mx_by_preference(dns_lab):
    assert await dns_lab.resolver.mx("syr.edu") == [(10, "smtp1.syr.edu"), (20, "smtp2.syr.edu")]
    assert await dns_lab.resolver.mx("LuxSci.NET.") == [(10, "mx1.luxsci.net"), (20, "mx2.luxsci.net"),
                                                    (30, "mx3.luxsci.net")]


async def test_implicit_mx_when_only_an_a_record(dns_lab):
    assert await dns_lab.resolver.mx("www.syr.edu") == [(0, "www.syr.edu")]     # RFC 5321 §5.1


@pytest.mark.parametrize("domain, words", [("nobody.syr.edu", "NXDOMAIN"),
                                           ("example.com", "REFUSED"),
                                           ("_dmarc.syr.edu", "no MX and no A")])
async def test_mx_permanent_failures(dns_lab, domain, words):
    with pytest.raises(LookupFailed) as failed:
        await dns_lab.resolver.mx(domain)
    assert failed.value.temporary is False and words in failed.value.reason


async def test_bad_name_is_permanent(dns_lab):
    with pytest.raises(LookupFailed) as failed:
        await dns_lab.resolver.mx("a..b")
    assert not failed.value.temporary


async def test_a_follows_cname(dns_lab):
    assert await dns_lab.resolver.a("mail.syr.edu") == ["127.0.0.1"]
    with pytest.raises(LookupFailed) as failed:
        await dns_lab.resolver.a("syr.edu")
    assert not failed.value.temporary


async def test_ptr(dns_lab):
    assert await dns_lab.resolver.ptr("127.0.0.3") == "mail.northpole.org"
    assert await dns_lab.resolver.ptr("127.0.0.1") == "smtp1.syr.edu"
    assert await dns_lab.resolver.ptr("127.9.9.9") is None       # NXDOMAIN
    assert await dns_lab.resolver.ptr("::1") is None             # ip6.arpa is not a dns_lab zone
    with pytest.raises(LookupFailed):
        await dns_lab.resolver.ptr("not-an-address")


async def test_repeated_look_ups_all_reach_the_server_and_a_changed_zone_is_heard(dns_lab):
    resolver = dns_lab.resolver
    with mock.patch.object(client, "_answer", wraps=client._answer) as read:
        for _ in range(3):
            assert await resolver.mx("syr.edu") == [(10, "smtp1.syr.edu"), (20, "smtp2.syr.edu")]
            with pytest.raises(LookupFailed) as failed:
                await resolver.mx("nobody.syr.edu")
            assert "NXDOMAIN" in failed.value.reason and failed.value.__traceback__ is not None
    assert [q.name for q in dns_lab.queries()] == ["syr.edu", "nobody.syr.edu"] * 3   # nothing cached
    assert read.call_count == 2                      # each distinct reply was read once
    dns_lab.server.authority.delete_record("syr.edu.", "syr.edu", "MX", "20 smtp2.syr.edu.")
    assert await resolver.mx("syr.edu") == [(10, "smtp1.syr.edu")]


async def test_truncated_udp_falls_back_to_tcp(dns_lab):
    addresses = await dns_lab.resolver.a("many.big.test")
    assert len(addresses) == 100
    assert [(q.transport, q.answers) for q in dns_lab.queries()] == [("udp", 0), ("tcp", 100)]


async def test_every_query_is_an_event_with_the_source_address(dns_lab):
    await dns_lab.resolver.mx("gmail.com", source="127.0.0.3")
    await dns_lab.resolver.mx("www.syr.edu", source="127.0.0.4")
    events = dns_lab.queries()
    assert [(e.name, e.rdtype, e.rcode, e.answers, e.transport) for e in events] == [
        ("gmail.com", "MX", "NOERROR", 1, "udp"),
        ("www.syr.edu", "MX", "NOERROR", 0, "udp"),
        ("www.syr.edu", "A", "NOERROR", 1, "udp"),
    ]
    assert events[0].client.startswith("127.0.0.3:") and events[1].client.startswith("127.0.0.4:")
    assert all(e.time > 0 for e in events)


async def test_timeout_is_temporary():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        resolver = LabResolver("127.0.0.1", silent.getsockname()[1], timeout=0.3)
        with pytest.raises(LookupFailed) as failed:
            await resolver.mx("syr.edu")
    assert failed.value.temporary and "timeout" in failed.value.reason


async def test_nobody_listening_is_temporary():
    resolver = LabResolver("127.0.0.1", free_port(), timeout=0.5)
    with pytest.raises(LookupFailed) as failed:
        await resolver.a("syr.edu")
    assert failed.value.temporary


async def test_servfail_is_temporary_and_the_server_survives_a_bug():
    class Broken(Authority):
        def _respond(self, wire, max_udp):
            raise RuntimeError("a bug")

    dns_lab = await start(Broken(load_world().zones))
    try:
        with pytest.raises(LookupFailed) as failed:
            await dns_lab.resolver.mx("syr.edu")
        assert failed.value.temporary and "SERVFAIL" in failed.value.reason
        assert dns_lab.queries()[0].rcode == "SERVFAIL"
    finally:
        await dns_lab.server.stop()


# -- raw sockets -----------------------------------------------------------------------

async def test_udp_garbage_is_survived(dns_lab):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"x", b"hello world\r\n", bytes(12), b"\xff" * 2000):
            s.sendto(junk, ("127.0.0.1", dns_lab.port))
    # the junk is queued on the server's socket ahead of this query, so it is read first
    assert await dns_lab.resolver.a("smtp1.syr.edu") == ["127.0.0.1"]


@pytest.mark.parametrize("opcode", [3, 15])
async def test_udp_unknown_opcode_is_notimp(dns_lab, opcode):
    bare = dns.message.Message()                     # no question, as genreport sends it
    bare.set_opcode(opcode)
    asked = dns.message.make_query("syr.edu", "MX")
    asked.set_opcode(opcode)
    for query in (bare, asked):
        reply = await asyncio.to_thread(dns.query.udp, query, "127.0.0.1", 2, dns_lab.port)
        assert reply.id == query.id and reply.flags & dns.flags.QR and reply.opcode() == opcode
        assert reply.rcode() == dns.rcode.NOTIMP and reply.question == query.question
    assert [(e.name, e.rcode) for e in dns_lab.queries()] == [("", "NOTIMP"), ("syr.edu", "NOTIMP")]


async def test_udp_tsig_with_an_unknown_key_is_notauth_badkey(dns_lab):
    query = dns.message.make_query("syr.edu", "SOA")
    query.use_tsig(dns.tsig.Key("nokey.", "c2VjcmV0IG9mIG5vIGtleSB0aGUgbGFiIGtub3dz"))
    with pytest.raises(dns.tsig.PeerBadKey):             # dnspython verifies the reply and reads BADKEY
        await asyncio.to_thread(dns.query.udp, query, "127.0.0.1", 2, dns_lab.port)
    signed = dns.message.from_wire(query.to_wire(), keyring=False).tsig[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(query.to_wire(), ("127.0.0.1", dns_lab.port))
        wire = await asyncio.to_thread(s.recv, 65535)
    reply = dns.message.from_wire(wire, keyring=False)       # unsigned: read without verifying
    assert reply.id == query.id and reply.rcode() == dns.rcode.NOTAUTH and reply.question == query.question
    tsig = reply.tsig[0]
    assert reply.tsig.name == query.keyname and (tsig.error, tsig.mac) == (dns.rcode.BADKEY, b"")
    assert (tsig.algorithm, tsig.time_signed) == (signed.algorithm, signed.time_signed)
    assert [(e.name, e.rcode) for e in dns_lab.queries()] == [("syr.edu", "NOTAUTH")] * 2


async def test_tcp_several_queries_per_connection(dns_lab):
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_lab.port)
    first = dns.message.make_query("syr.edu", "MX")
    second = dns.message.make_query("gmail.com", "TXT")
    writer.write(frame(first.to_wire()) + frame(second.to_wire()))      # pipelined
    one, two = await read_frame(reader), await read_frame(reader)
    assert (one.id, two.id) == (first.id, second.id)
    assert len(one.answer[0]) == 2 and one.additional
    writer.close()
    assert {e.transport for e in dns_lab.queries()} == {"tcp"}


async def test_tcp_garbage_is_survived(dns_lab):
    for junk in (b"\x00\x05hello", b"\x00\x00", b"EHLO me\r\n", frame(b"\xff" * 40), b"\x01"):
        reader, writer = await asyncio.open_connection("127.0.0.1", dns_lab.port)
        writer.write(junk)
        writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_lab.port)
    query = dns.message.make_query("syr.edu", "A")
    writer.write(frame(b"\x12\x34" + bytes(10) + b"junk") + frame(query.to_wire()))
    formerr, ok = await read_frame(reader), await read_frame(reader)
    assert formerr.id == 0x1234 and formerr.rcode() == dns.rcode.FORMERR
    assert ok.answer == [] and ok.rcode() == dns.rcode.NOERROR
    writer.close()
    assert await dns_lab.resolver.mx("syr.edu")


async def test_tcp_idle_and_partial_frames_are_closed(dns_lab, monkeypatch):
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT", 0.2)
    idle = await asyncio.open_connection("127.0.0.1", dns_lab.port)
    partial = await asyncio.open_connection("127.0.0.1", dns_lab.port)
    partial[1].write(b"\xff\xff" + b"x" * 100)           # promises 65535 octets, sends 100
    for reader, writer in (idle, partial):
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()


async def test_idle_tcp_connections_make_room_for_a_query(dns_lab):
    """Past MAX_TCP_CLIENTS idle connections a new one is still answered: the oldest idle goes."""
    count = server_module.MAX_TCP_CLIENTS + 20
    held = [await asyncio.open_connection("127.0.0.1", dns_lab.port) for _ in range(count)]
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_lab.port)
    query = dns.message.make_query("syr.edu", "MX")
    writer.write(frame(query.to_wire()))
    assert (await asyncio.wait_for(read_frame(reader), 10)).id == query.id
    assert await asyncio.wait_for(held[0][0].read(), 10) == b""       # the oldest idle one was closed
    for _, w in held + [(reader, writer)]:
        w.close()


async def test_stop_closes_open_connections():
    dns_lab = await start(Authority(load_world().zones))
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_lab.port)
    await async_wait_for(lambda: dns_lab.server._clients, what="the server to take the connection")
    await asyncio.wait_for(dns_lab.server.stop(), 2)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    # the port is free again for both transports
    again = DnsServer(dns_lab.server.authority, EventBus(), Clock(), "127.0.0.1", dns_lab.port)
    await again.start()
    await again.stop()


# -- dig ---------------------------------------------------------------------------------

async def dig(dns_lab, *args: str) -> str:
    path = require_tool("dig")
    proc = await asyncio.create_subprocess_exec(
        path, "@127.0.0.1", "-p", str(dns_lab.port), "+time=2", "+tries=1", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    return out.decode()


@pytest.mark.interop
async def test_dig_mx_udp_and_tcp(dns_lab):
    for extra in ((), ("+tcp",)):
        out = await dig(dns_lab, "syr.edu", "MX", "+short", *extra)
        assert out.split("\n")[:2] == ["10 smtp1.syr.edu.", "20 smtp2.syr.edu."]
    assert [e.transport for e in dns_lab.queries()] == ["udp", "tcp"]


@pytest.mark.interop
async def test_dig_reverse(dns_lab):
    assert (await dig(dns_lab, "-x", "127.0.0.3", "+short")).strip() == "mail.northpole.org."


@pytest.mark.interop
async def test_dig_txt(dns_lab):
    out = await dig(dns_lab, "northpole.org", "TXT", "+short")
    assert out.strip() == '"v=spf1 mx -all"'


@pytest.mark.interop
async def test_dig_nxdomain(dns_lab):
    out = await dig(dns_lab, "nobody.syr.edu", "A")
    assert "status: NXDOMAIN" in out and "flags: qr aa" in out
    authority = out.split(";; AUTHORITY SECTION:\n")[1].split("\n")[0].split()
    assert authority[:5] == ["syr.edu.", "300", "IN", "SOA", "ns.syr.edu."]


@pytest.mark.interop
async def test_dig_big_answer_retries_over_tcp(dns_lab):
    out = await dig(dns_lab, "many.big.test", "A", "+ignore", "+noedns")    # +ignore: show the TC reply
    assert "flags: qr aa tc" in out and "ANSWER: 0," in out
    out = await dig(dns_lab, "many.big.test", "A", "+short", "+noedns")
    assert len(out.split()) == 100                                       # dig retried over TCP


async def test_every_lookup_reaches_the_server_even_when_its_reply_was_seen_before(dns_lab):
    first = await dns_lab.resolver.mx("syr.edu")
    again = await asyncio.gather(*(dns_lab.resolver.mx("syr.edu") for _ in range(5)))
    assert all(answer == first for answer in again)
    asked = [q for q in dns_lab.queries() if q.name.rstrip(".") == "syr.edu" and q.rdtype == "MX"]
    assert len(asked) == 6 and all(q.rcode == "NOERROR" and q.answers == 2 for q in asked)
