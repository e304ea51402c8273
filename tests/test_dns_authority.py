"""Authoritative answers, bytes in and bytes out, against the default world's zones."""

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.zone
import pytest
from hypothesis import given, settings, strategies as st

from maillab.dns.authority import Authority, QueryInfo
from maillab.lab.world import load_world


@pytest.fixture(scope="module")
def authority():
    return Authority(load_world().zones)


def ask(authority, name, rdtype, max_udp=4096, **query_args):
    query = dns.message.make_query(name, rdtype, **query_args)
    wire, info = authority.respond(query.to_wire(), max_udp)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.id == query.id and reply.flags & dns.flags.QR
    return reply, info


def records(section, rdtype=None):
    return sorted((rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rd.to_text())
                  for rrset in section for rd in rrset
                  if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype))


def zone(origin, text):
    return dns.zone.from_text(text, origin=origin, relativize=False)


SOA = "@ IN SOA ns hostmaster 1 3600 600 604800 60\n@ IN NS ns\nns IN A 127.0.0.1\n"


def test_mx_has_both_exchangers_and_their_addresses(authority):
    reply, info = ask(authority, "syr.edu", "MX")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert records(reply.answer) == [("syr.edu.", "MX", "10 smtp1.syr.edu."),
                                     ("syr.edu.", "MX", "20 smtp2.syr.edu.")]
    assert records(reply.additional) == [("smtp1.syr.edu.", "A", "127.0.0.1"),
                                         ("smtp2.syr.edu.", "A", "127.0.0.2")]
    assert [mx.preference for mx in reply.answer[0]] == [10, 20]        # best first on the wire
    assert info == QueryInfo("syr.edu", "MX", "NOERROR", 2)


def test_a_record(authority):
    reply, _ = ask(authority, "mx.gmail.com", "A")
    assert records(reply.answer) == [("mx.gmail.com.", "A", "127.0.0.4")]


def test_names_are_case_insensitive_and_echoed_as_asked(authority):
    reply, info = ask(authority, "MX.Gmail.COM", "A")
    assert records(reply.answer, "A")[0][2] == "127.0.0.4"
    assert reply.question[0].name.to_text() == "MX.Gmail.COM."
    assert info.name == "MX.Gmail.COM"


def test_ptr_of_smtp1(authority):
    reply, info = ask(authority, "1.0.0.127.in-addr.arpa", "PTR")
    assert records(reply.answer) == [("1.0.0.127.in-addr.arpa.", "PTR", "smtp1.syr.edu.")]
    assert reply.flags & dns.flags.AA and info.answers == 1


def test_spf_txt(authority):
    reply, _ = ask(authority, "syr.edu", "TXT")
    assert records(reply.answer) == [("syr.edu.", "TXT", '"v=spf1 ip4:127.0.0.1 ip4:127.0.0.2 -all"')]


def test_cname_is_chased_to_its_target(authority):
    reply, info = ask(authority, "mail.syr.edu", "A")
    assert records(reply.answer) == [("mail.syr.edu.", "CNAME", "smtp1.syr.edu."),
                                     ("smtp1.syr.edu.", "A", "127.0.0.1")]
    assert info.answers == 2


def test_cname_query_returns_the_cname_only(authority):
    reply, _ = ask(authority, "mail.syr.edu", "CNAME")
    assert records(reply.answer) == [("mail.syr.edu.", "CNAME", "smtp1.syr.edu.")]


def test_nxdomain_is_authoritative_with_soa(authority):
    reply, info = ask(authority, "nobody.syr.edu", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN and reply.flags & dns.flags.AA
    assert not reply.answer
    assert [(r.name.to_text(), r.rdtype) for r in reply.authority] == [("syr.edu.", dns.rdatatype.SOA)]
    assert reply.authority[0].ttl == 300          # min(SOA TTL, minimum), RFC 2308 §3
    assert info == QueryInfo("nobody.syr.edu", "A", "NXDOMAIN", 0)


def test_nodata_has_soa_and_noerror(authority):
    reply, info = ask(authority, "smtp1.syr.edu", "MX")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert not reply.answer and reply.authority[0].rdtype == dns.rdatatype.SOA
    assert info.rcode == "NOERROR" and info.answers == 0


def test_empty_non_terminal_is_nodata_not_nxdomain(authority):
    reply, _ = ask(authority, "0.0.127.in-addr.arpa", "PTR")      # RFC 8020
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer


def test_foreign_zone_is_refused_without_aa(authority):
    reply, info = ask(authority, "example.com", "A")
    assert reply.rcode() == dns.rcode.REFUSED and not reply.flags & dns.flags.AA
    assert info.rcode == "REFUSED"


def test_any_gives_every_rdataset(authority):
    reply, _ = ask(authority, "syr.edu", "ANY")
    types = {dns.rdatatype.to_text(r.rdtype) for r in reply.answer}
    assert types == {"SOA", "NS", "MX", "TXT"}


def test_ns_target_in_additional(authority):
    reply, _ = ask(authority, "northpole.org", "NS")
    assert records(reply.additional) == [("ns.northpole.org.", "A", "127.0.0.1")]


def test_dnsbl_listing(authority):
    reply, _ = ask(authority, "66.0.0.127.dnsbl.lab", "A")
    assert records(reply.answer) == [("66.0.0.127.dnsbl.lab.", "A", "127.0.0.2")]
    reply, _ = ask(authority, "1.0.0.127.dnsbl.lab", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN


def test_edns_is_answered_with_edns():
    authority = Authority(load_world().zones)
    reply, _ = ask(authority, "syr.edu", "MX", use_edns=0, payload=1400)
    assert reply.edns == 0 and reply.payload > 512
    reply, _ = ask(authority, "syr.edu", "MX")
    assert reply.edns == -1


def test_unknown_edns_version_is_badvers(authority):
    reply, info = ask(authority, "syr.edu", "MX", use_edns=1)
    assert reply.rcode() == dns.rcode.BADVERS and info.rcode == "BADVERS"


@pytest.fixture(scope="module")
def big():
    text = SOA + "".join(f'big IN TXT "{i:03d} {"x" * 200}"\n' for i in range(40))
    text += "".join(f'mid IN TXT "{i:03d} {"x" * 200}"\n' for i in range(3))
    return Authority({"big.test.": zone("big.test.", text)})


def test_udp_without_edns_is_truncated_to_512(big):
    query = dns.message.make_query("big.big.test", "TXT")
    wire, info = big.respond(query.to_wire(), 4096)
    assert len(wire) <= 512
    assert dns.message.from_wire(wire).flags & dns.flags.TC


def test_udp_honours_the_edns_payload_and_the_server_ceiling(big):
    def udp(max_udp, **edns):
        query = dns.message.make_query("mid.big.test", "TXT", **edns)
        wire, _ = big.respond(query.to_wire(), max_udp)
        return len(wire), bool(dns.message.from_wire(wire).flags & dns.flags.TC)

    size, truncated = udp(4096, use_edns=0, payload=1232)
    assert 512 < size <= 1232 and not truncated
    assert udp(4096)[1]                                   # no EDNS: 512
    size, truncated = udp(600, use_edns=0, payload=1232)  # our ceiling is lower
    assert size <= 600 and truncated


def test_tcp_carries_the_whole_answer(big):
    query = dns.message.make_query("big.big.test", "TXT")
    wire, info = big.respond(query.to_wire(), None)
    reply = dns.message.from_wire(wire)
    assert len(wire) > 4096 and not reply.flags & dns.flags.TC
    assert info.answers == 40 and len(reply.answer[0]) == 40


def test_additional_that_does_not_fit_is_dropped_without_tc():
    labels = [f"mx{i}-{'x' * 33}" for i in range(8)]      # long, so they do not compress
    mx = "".join(f"@ IN MX {i} {label}\n" for i, label in enumerate(labels))
    hosts = "".join(f"{label} IN A 127.0.1.{i}\n" for i, label in enumerate(labels))
    authority = Authority({"many.test.": zone("many.test.", SOA + mx + hosts)})
    query = dns.message.make_query("many.test", "MX")
    wire, _ = authority.respond(query.to_wire(), 4096)
    reply = dns.message.from_wire(wire)
    assert len(wire) <= 512 and not reply.flags & dns.flags.TC      # RFC 2181 §9
    assert len(reply.answer[0]) == 8 and 0 < len(reply.additional) < 8


def test_wildcard_synthesis_and_cname_across_zones():
    a = zone("a.test.", SOA + "* IN A 10.0.0.1\nalias IN CNAME www.b.test.\n"
             "loop IN CNAME loop\nout IN CNAME elsewhere.example.\n")
    b = zone("b.test.", SOA + "www IN A 10.0.0.2\n")
    authority = Authority({"a.test.": a, "b.test.": b})
    reply, _ = ask(authority, "anything.a.test", "A")
    assert records(reply.answer) == [("anything.a.test.", "A", "10.0.0.1")]
    reply, _ = ask(authority, "alias.a.test", "A")
    assert records(reply.answer) == [("alias.a.test.", "CNAME", "www.b.test."),
                                     ("www.b.test.", "A", "10.0.0.2")]
    reply, _ = ask(authority, "loop.a.test", "A")
    assert records(reply.answer) == [("loop.a.test.", "CNAME", "loop.a.test.")]
    reply, _ = ask(authority, "out.a.test", "A")
    assert reply.rcode() == dns.rcode.NOERROR and len(reply.answer) == 1


def test_delegation_below_the_apex_is_a_referral():
    a = zone("a.test.", SOA + "sub IN NS ns.sub\nns.sub IN A 10.0.0.9\n")
    reply, _ = ask(Authority({"a.test.": a}), "host.sub.a.test", "A")
    assert not reply.flags & dns.flags.AA and not reply.answer
    assert records(reply.authority) == [("sub.a.test.", "NS", "ns.sub.a.test.")]
    assert records(reply.additional) == [("ns.sub.a.test.", "A", "10.0.0.9")]


def test_longest_matching_zone_wins():
    parent = zone("a.test.", SOA + "x.sub IN A 10.0.0.1\n")
    child = zone("sub.a.test.", SOA + "x IN A 10.0.0.2\n")
    reply, _ = ask(Authority({"a.test.": parent, "sub.a.test.": child}), "x.sub.a.test", "A")
    assert records(reply.answer) == [("x.sub.a.test.", "A", "10.0.0.2")]


def test_other_opcodes_are_not_implemented(authority):
    query = dns.message.make_query("syr.edu", "SOA")
    query.set_opcode(dns.opcode.NOTIFY)
    wire, _ = authority.respond(query.to_wire(), 512)
    assert dns.message.from_wire(wire).rcode() == dns.rcode.NOTIMP


@pytest.mark.parametrize("opcode", [3, 15])
def test_unknown_opcode_is_notimp_even_without_a_question(authority, opcode):
    # raw header: ID 0xbeef, opcode in bits 11-14, RD; QDCOUNT 0 (genreport's opcode test)
    bare = b"\xbe\xef" + ((opcode << 11) | 0x0100).to_bytes(2, "big") + bytes(8)
    wire, info = authority.respond(bare, 512)
    assert wire == b"\xbe\xef" + (0x8000 | (opcode << 11) | 0x0100 | 4).to_bytes(2, "big") + bytes(8)
    assert info == QueryInfo("", "", "NOTIMP", 0)
    # with a question: echoed
    query = dns.message.make_query("syr.edu", "MX")
    query.set_opcode(opcode)
    wire, info = authority.respond(query.to_wire(), 512)
    reply = dns.message.from_wire(wire)
    assert reply.id == query.id and reply.flags & dns.flags.QR and reply.opcode() == opcode
    assert reply.rcode() == dns.rcode.NOTIMP and reply.question == query.question
    assert info == QueryInfo("syr.edu", "MX", "NOTIMP", 0)
    # and whatever follows the header, it is the opcode that is judged, not the body
    wire, info = authority.respond(query.to_wire()[:15] + b"junk", 512)
    assert wire[2:4] == (0x8000 | (opcode << 11) | 0x0100 | 4).to_bytes(2, "big") and wire[4:] == bytes(8)
    assert info.rcode == "NOTIMP"


def test_tsig_with_an_unknown_key_is_notauth_badkey(authority):
    query = dns.message.make_query("syr.edu", "SOA", use_edns=0)
    query.use_tsig(dns.tsig.Key("nokey.", "c2VjcmV0IG9mIG5vIGtleSB0aGUgbGFiIGtub3dz"))
    sent = query.to_wire()
    signed = dns.message.from_wire(sent, keyring=False).tsig[0]
    wire, info = authority.respond(sent, 512)
    reply = dns.message.from_wire(wire, keyring=False)       # unsigned: read it without verifying
    assert reply.id == query.id and reply.rcode() == dns.rcode.NOTAUTH
    assert reply.question == query.question and reply.answer == [] and reply.edns == 0
    tsig = reply.tsig[0]
    assert reply.tsig.name == dns.name.from_text("nokey.") and reply.additional == []   # TSIG comes last
    assert (tsig.error, tsig.mac, tsig.other) == (dns.rcode.BADKEY, b"", b"")
    assert (tsig.algorithm, tsig.time_signed, tsig.fudge, tsig.original_id) == (
        signed.algorithm, signed.time_signed, signed.fudge, signed.original_id)
    assert info == QueryInfo("syr.edu", "SOA", "NOTAUTH", 0)
    with pytest.raises(dns.tsig.PeerBadKey):              # what a client holding the key makes of it
        dns.message.from_wire(wire, keyring=query.keyring, request_mac=query.mac)


def test_zone_transfer_is_refused(authority):
    reply, _ = ask(authority, "syr.edu", "AXFR", max_udp=None)
    assert reply.rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"hello world", bytes(11),
                                     b"\x12\x34\x01\x00\x00\x01" + bytes(6) + b"\x07truncat",
                                     b"\xff" * 600])
def test_garbage_never_raises(authority, garbage):
    wire, info = authority.respond(garbage, 512)
    if wire is not None:
        reply = dns.message.from_wire(wire)
        assert reply.id == int.from_bytes(garbage[:2], "big")
        assert reply.rcode() == dns.rcode.FORMERR and info.rcode == "FORMERR"


def test_responses_are_ignored(authority):
    reply, _ = ask(authority, "syr.edu", "MX")
    assert authority.respond(reply.to_wire(), 512) == (None, None)


def test_two_questions_are_formerr(authority):
    query = dns.message.make_query("syr.edu", "MX")
    query.question.append(dns.rrset.RRset(dns.name.from_text("gmail.com"), 1, dns.rdatatype.MX))
    wire, info = authority.respond(query.to_wire(), 512)
    assert dns.message.from_wire(wire).rcode() == dns.rcode.FORMERR


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_never_raises(data):
    authority = Authority(load_world().zones, cache_size=16)
    wire, info = authority.respond(data, 512)
    assert wire is None or (len(wire) >= 12 and info is not None)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_fuzz_mutated_query_never_raises(noise):
    base = bytearray(dns.message.make_query("syr.edu", "MX", use_edns=0).to_wire())
    for i, b in enumerate(noise):
        base[(i * 7 + b) % len(base)] ^= b
    wire, _ = Authority(load_world().zones).respond(bytes(base), 512)
    assert wire is None or len(wire) >= 12


def test_cache_hit_returns_the_callers_id():
    authority = Authority(load_world().zones)
    first = dns.message.make_query("syr.edu", "MX")
    first.id = 0x1111
    second = dns.message.make_query("syr.edu", "MX")
    second.id = 0xBEEF
    wire1, info1 = authority.respond(first.to_wire(), 512)
    wire2, info2 = authority.respond(second.to_wire(), 512)
    assert authority.hits == 1 and authority.misses == 1
    assert wire2[:2] == b"\xbe\xef" and wire1[2:] == wire2[2:] and info1 == info2
    assert dns.message.from_wire(wire2).id == 0xBEEF


def test_cache_keeps_udp_and_tcp_apart(big):
    query = dns.message.make_query("big.big.test", "TXT").to_wire()
    udp, _ = big.respond(query, 4096)
    tcp, _ = big.respond(query, None)
    assert len(udp) <= 512 < len(tcp)


def test_big_replies_are_not_cached(big):
    query = dns.message.make_query("big.big.test", "TXT").to_wire()
    hits = big.hits
    big.respond(query, None)
    big.respond(query, None)
    assert big.hits == hits


def test_set_zones_clears_the_cache():
    authority = Authority({"a.test.": zone("a.test.", SOA + "www IN A 10.0.0.1\n")})
    reply, _ = ask(authority, "www.a.test", "A")
    assert records(reply.answer)[0][2] == "10.0.0.1"
    authority.set_zones({"a.test.": zone("a.test.", SOA + "www IN A 10.0.0.2\n")})
    reply, _ = ask(authority, "www.a.test", "A")
    assert records(reply.answer)[0][2] == "10.0.0.2"


def test_cache_is_bounded():
    authority = Authority(load_world().zones, cache_size=5)
    for i in range(20):
        ask(authority, f"host{i}.syr.edu", "A")
    assert len(authority._cache) == 5


def test_relativized_zones_are_rejected():
    with pytest.raises(ValueError):
        Authority({"a.test.": dns.zone.from_text(SOA, origin="a.test.")})


# -- editing the zones at run time: add_record, delete_record (RFC 2136 rules) --------

def soa_serial(authority, origin):
    reply, _ = ask(authority, origin, "SOA")
    return reply.answer[0][0].serial


def test_add_record_is_answered_at_once_and_bumps_the_serial():
    authority = Authority(load_world().zones)
    reply, _ = ask(authority, "syr.edu", "MX")                          # now in the cache
    before = soa_serial(authority, "syr.edu")
    record = authority.add_record("syr.edu", "@", "MX", "5 www")
    assert (record.zone, record.name, record.ttl, record.rdtype, record.data) == \
        ("syr.edu", "syr.edu", 300, "MX", "5 www.syr.edu.")           # the RRset's TTL; relative data
    assert record.text == "syr.edu 300 IN MX 5 www.syr.edu."
    misses = authority.misses
    reply, _ = ask(authority, "syr.edu", "MX")
    assert authority.misses == misses + 1                               # not the cached answer
    assert records(reply.answer) == [("syr.edu.", "MX", "10 smtp1.syr.edu."), ("syr.edu.", "MX", "20 smtp2.syr.edu."),
                                     ("syr.edu.", "MX", "5 www.syr.edu.")]
    assert ("www.syr.edu.", "A", "127.0.0.1") in records(reply.additional)
    assert soa_serial(authority, "syr.edu") == before + 1


def test_a_ttl_given_to_add_applies_to_the_whole_rrset():
    authority = Authority(load_world().zones)
    authority.add_record("luxsci.net", "luxsci.net", "MX", "15 mx3", ttl=60)
    reply, _ = ask(authority, "luxsci.net", "MX")
    assert [rrset.ttl for rrset in reply.answer] == [60] and len(reply.answer[0]) == 4   # RFC 2181 §5.2


def test_add_at_a_new_name_takes_the_zone_default_ttl_and_the_name_comes_to_exist():
    authority = Authority({"a.test.": zone("a.test.", "$TTL 3600\n" + SOA)})   # SOA TTL 3600, MINIMUM 60
    reply, _ = ask(authority, "deep.a.test", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    record = authority.add_record("a.test", "www.deep", "A", "10.0.0.1")
    assert (record.name, record.ttl) == ("www.deep.a.test", 60)          # min(SOA TTL, MINIMUM)
    reply, _ = ask(authority, "www.deep.a.test", "A")
    assert records(reply.answer) == [("www.deep.a.test.", "A", "10.0.0.1")]
    reply, _ = ask(authority, "deep.a.test", "A")                        # an empty non-terminal now
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer and records(reply.authority, "SOA")


def test_owner_names_are_relative_unless_they_end_with_a_dot():
    authority = Authority({"a.test.": zone("a.test.", SOA), "sub.a.test.": zone("sub.a.test.", SOA)})
    assert authority.add_record("a.test", "@", "TXT", '"apex"').name == "a.test"
    assert authority.add_record("a.test", "one", "A", "10.0.0.1").name == "one.a.test"
    assert authority.add_record("a.test", "two.a.test.", "A", "10.0.0.2").name == "two.a.test"
    assert authority.add_record("a.test", "three.a.test", "A", "10.0.0.3").name == "three.a.test"  # as listed
    assert authority.add_record("a.test", "*", "A", "10.0.0.4").name == "*.a.test"
    with pytest.raises(ValueError, match="not inside zone a.test"):
        authority.add_record("a.test", "www.example.com.", "A", "10.0.0.1")
    with pytest.raises(ValueError, match="belongs to zone sub.a.test"):
        authority.add_record("a.test", "x.sub", "A", "10.0.0.1")
    with pytest.raises(ValueError, match="give the record a name"):
        authority.add_record("a.test", " ", "A", "10.0.0.1")
    with pytest.raises(ValueError, match="not a valid name"):
        authority.add_record("a.test", "a..b", "A", "10.0.0.1")
    reply, _ = ask(authority, "whatever.a.test", "A")                   # the wildcard answers
    assert records(reply.answer) == [("whatever.a.test.", "A", "10.0.0.4")]


@pytest.mark.parametrize("args, error, words", [
    (("syr.edu", "@", "MX", "10 SMTP1.syr.edu."), ValueError, "already there"),
    (("syr.edu", "www", "CNAME", "smtp1"), ValueError, "already has A data, and a CNAME can not sit beside"),
    (("syr.edu", "@", "CNAME", "smtp1"), ValueError, "a CNAME can not sit beside other data"),
    (("syr.edu", "mail", "A", "127.0.0.9"), ValueError, "is an alias .CNAME smtp1.syr.edu.., and no other data"),
    (("syr.edu", "mail", "MX", "10 smtp1"), ValueError, "RFC 1034 §3.6.2"),
    (("syr.edu", "mail", "CNAME", "smtp2"), ValueError, "already has a CNAME record and can have only one"),
    (("syr.edu", "@", "SOA", "ns hostmaster 1 2 3 4 5"), ValueError, "SOA record is the lab's own"),
    (("syr.edu", "x", "ANY", "x"), ValueError, "not a record type"),
    (("syr.edu", "x", "BOGUS", "x"), ValueError, "unknown record type"),
    (("syr.edu", "x", "A", "300.1.2.3"), ValueError, "not valid A data"),
    (("syr.edu", "@", "MX", "mx.syr.edu."), ValueError, "not valid MX data"),
    (("example.com", "@", "MX", "10 mx"), KeyError, "no zone example.com"),
])
def test_add_refuses_what_dns_forbids_and_changes_nothing(args, error, words):
    authority = Authority(load_world().zones)
    before = authority.records()
    with pytest.raises(error, match=words) as caught:
        authority.add_record(*args)
    assert "\n" not in str(caught.value)
    assert authority.records() == before                                # the serial too


def test_add_refuses_a_ttl_out_of_range():
    with pytest.raises(ValueError, match="TTL -1 out of range"):
        Authority(load_world().zones).add_record("syr.edu", "x", "A", "127.0.0.9", ttl=-1)


def test_delete_record_is_answered_at_once_and_bumps_the_serial():
    authority = Authority(load_world().zones)
    ask(authority, "syr.edu", "MX")
    ask(authority, "www.syr.edu", "A")
    before = soa_serial(authority, "syr.edu")
    record = authority.delete_record("syr.edu", "syr.edu", "MX", "20 smtp2")   # data parsed, as in add
    assert record.text == "syr.edu 300 IN MX 20 smtp2.syr.edu."
    reply, _ = ask(authority, "syr.edu", "MX")
    assert records(reply.answer) == [("syr.edu.", "MX", "10 smtp1.syr.edu.")]
    authority.delete_record("syr.edu", "www.syr.edu", "A", "127.0.0.1")       # all that www had
    reply, _ = ask(authority, "www.syr.edu", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN and records(reply.authority, "SOA")
    authority.delete_record("syr.edu", "syr.edu", "TXT", '"v=spf1 ip4:127.0.0.1 ip4:127.0.0.2 -all"')
    reply, _ = ask(authority, "syr.edu", "TXT")                               # NODATA: the name stays
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer and records(reply.authority, "SOA")
    assert soa_serial(authority, "syr.edu") == before + 3


def test_deleting_the_last_name_below_an_empty_non_terminal_makes_it_vanish():
    authority = Authority({"a.test.": zone("a.test.", SOA + "www.deep IN A 10.0.0.1\n")})
    assert ask(authority, "deep.a.test", "A")[0].rcode() == dns.rcode.NOERROR
    authority.delete_record("a.test", "www.deep", "A", "10.0.0.1")
    assert ask(authority, "deep.a.test", "A")[0].rcode() == dns.rcode.NXDOMAIN


def test_delete_keeps_the_last_ns_of_the_apex():
    authority = Authority({"a.test.": zone("a.test.", SOA + "@ IN NS ns2\n")})
    authority.delete_record("a.test", "@", "NS", "ns2")                 # one of two: fine
    with pytest.raises(ValueError, match=r"last NS record of a.test: .*add another NS first"):
        authority.delete_record("a.test", "@", "NS", "ns.a.test.")
    reply, _ = ask(authority, "a.test", "NS")
    assert records(reply.answer) == [("a.test.", "NS", "ns.a.test.")]


@pytest.mark.parametrize("args, error, words", [
    (("syr.edu", "syr.edu", "SOA", "ns.syr.edu. hostmaster.syr.edu. 2026112301 3600 600 604800 300"),
     ValueError, "SOA record is the lab's own"),
    (("syr.edu", "syr.edu", "MX", "30 smtp3"), KeyError, "no record syr.edu MX 30 smtp3.syr.edu. in zone syr.edu"),
    (("syr.edu", "nowhere", "A", "127.0.0.1"), KeyError, "no record nowhere.syr.edu A"),
    (("syr.edu", "syr.edu", "MX", "twenty smtp2"), ValueError, "not valid MX data"),
    (("syr.edu", "mx.gmail.com.", "A", "127.0.0.4"), ValueError, "not inside zone syr.edu"),
    (("gmail.org", "@", "MX", "10 mx"), KeyError, "no zone gmail.org"),
])
def test_delete_refuses_and_changes_nothing(args, error, words):
    authority = Authority(load_world().zones)
    before = authority.records()
    with pytest.raises(error, match=words):
        authority.delete_record(*args)
    assert authority.records() == before


def test_replace_record_refuses_to_make_a_duplicate():
    authority = Authority(load_world().zones)
    with pytest.raises(ValueError, match="already there"):
        authority.replace_record("syr.edu", "syr.edu", "MX", "10 smtp1.syr.edu.", "20 smtp2")
    assert authority.replace_record("syr.edu", "syr.edu", "MX", "10 smtp1", "10 smtp1").data == "10 smtp1.syr.edu."


def test_a_zone_fault_is_set_healed_and_refused_for_a_zone_the_world_lacks():
    authority = Authority(load_world().zones)
    authority.set_fault(" syr.edu ", "servfail")
    assert authority.faults == {dns.name.from_text("syr.edu"): "servfail"}
    authority.set_fault("syr.edu", None)
    assert authority.faults == {}
    for zone in ("example.com", "bad..zone"):              # a name dnspython refuses: the same KeyError
        with pytest.raises(KeyError, match="no zone"):
            authority.set_fault(zone, "servfail")
    with pytest.raises(ValueError, match="unknown DNS fault"):
        authority.set_fault("syr.edu", "flaky")
