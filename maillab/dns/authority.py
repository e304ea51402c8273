"""Authoritative DNS answers for the lab's zones, without any I/O.

`Authority.respond(wire, max_udp)` takes one query as bytes and returns the
reply as bytes, with a `QueryInfo` summary for the DNS log.  The asyncio
adapters in `server.py` only move those bytes; tests feed bytes directly.

What it answers (RFC 1034 §4.3.2, the authoritative part of the algorithm):
the longest matching zone, else REFUSED; AA on every authoritative answer;
CNAME chains followed inside our zones; wildcards (RFC 4592); referrals at
zone cuts below an apex; NXDOMAIN or NODATA with the zone's SOA in authority
(RFC 2308 §3), empty non-terminals being NODATA (RFC 8020); A/AAAA for MX and
NS targets in the additional section; QTYPE ANY gives every rdataset at the
node; EDNS0 echoed when the query had it (RFC 6891 §7).

Invariants: `respond` never raises.  Input shorter than a header, or a
response, gives (None, None).  The opcode is judged first, from the header
alone: any but QUERY gets NOTIMP with the ID, opcode and RD echoed, and the
question if exactly one was sent and could be read (RFC 1035 §4.1.1, RFC 6895
§2.2; what NSD and BIND answer).  Then an unparseable query whose header is
readable gets a header-only FORMERR (RFC 1035 §4.1.1), and a TSIG-signed one
NOTAUTH with an unsigned TSIG whose error is BADKEY, for the lab knows no keys
(RFC 8945 §5.2.1, §5.3.2); our own bug a SERVFAIL.  Replies fit the
transport: over UDP 512 octets without EDNS, else the client's payload (capped
by `max_udp`, never below 512), truncated with TC set when an answer or
authority record does not fit (RFC 2181 §9); over TCP up to 65535.  Rendered
replies are cached by the query bytes after the 2-byte ID, bounded in entries
and in entry size; `set_zones()` and the edit methods below clear the cache
(whoever changes a zone object otherwise must call `set_zones()` again: which
names exist is indexed too).

At run time the zones can be edited, one record at a time, with the rules of
RFC 2136 dynamic update (what `nsupdate` does to a BIND zone):
`replace_record()` changes one record (say, an MX preference, so a class
watches routing change), `add_record()` adds one and `delete_record()` removes
one.  Owner names and names in the data are relative to the zone unless they
end with a dot ("@" is the apex); an owner already written out under the zone
("smtp1.syr.edu", as `records()` shows it) is taken as it is.  Refused, with
one line for the user: the SOA (the lab's own; its serial counts the
changes), a name outside the zone, a CNAME beside other data or other data
beside a CNAME (RFC 1034 §3.6.2, RFC 2181 §10.1), a second record of a
one-per-name type, a duplicate, the last NS at the apex (RFC 2136 §3.4.2.4).
An added record takes its RRset's TTL, or for a new RRset the zone's
min(SOA TTL, MINIMUM); a TTL given applies to the whole RRset (RFC 2181 §5.2).
Every change bumps the zone's SOA serial and clears the cache, so the next
query sees the new data.  `records()` lists every record for display.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.node
import dns.opcode
import dns.exception
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

CACHE_SIZE = 10_000
MAX_CNAME_CHAIN = 8
OUR_PAYLOAD = 1232          # the DNS flag day 2020 size; what we advertise
_TCP_MAX = 65535
FAULT_MODES = ("servfail", "nxdomain", "timeout")
_CACHE_QUERY_MAX = 512      # cache entries stay small: 10,000 of them take < 50 MB
_CACHE_REPLY_MAX = 4096
_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
_QR = 0x8000


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record of a zone, as text (what the DNS panel shows and edits)."""
    zone: str       # origin without the final dot
    name: str       # owner, absolute, without the final dot
    ttl: int
    rdtype: str
    data: str       # presentation form, names absolute ("10 smtp1.syr.edu.")

    @property
    def text(self) -> str:
        """The record as a zone file line: "syr.edu 300 IN MX 10 smtp1.syr.edu."."""
        return f"{self.name} {self.ttl} IN {self.rdtype} {self.data}"


@dataclass(frozen=True, slots=True)
class QueryInfo:
    """What the DNS log shows of one query: the question and the outcome."""
    name: str       # as asked, without the final dot ("." for the root)
    rdtype: str     # "MX", "A", ...
    rcode: str      # "NOERROR", "NXDOMAIN", ...
    answers: int    # records in the answer section


class Authority:
    """Answers queries for a set of zones (origin text with final dot -> zone)."""

    def __init__(self, zones: Mapping[str, dns.zone.Zone], cache_size: int = CACHE_SIZE) -> None:
        self._cache_size = cache_size
        self._cache: dict[tuple[bytes, int | None], tuple[bytes, QueryInfo]] = {}
        self.faults: dict[dns.name.Name, str] = {}
        self.hits = 0
        self.misses = 0
        self.set_zones(zones)

    # -- configuration -----------------------------------------------------

    def set_zones(self, zones: Mapping[str, dns.zone.Zone]) -> None:
        """Serve these zones from now on (and forget every cached reply)."""
        by_origin: dict[dns.name.Name, dns.zone.Zone] = {}
        names: dict[dns.name.Name, set[dns.name.Name]] = {}
        for text, zone in zones.items():
            if zone.relativize:
                raise ValueError(f"zone {text}: load it with relativize=False")
            origin = dns.name.from_text(text)
            by_origin[origin] = zone
            names[origin] = _existing_names(origin, zone)
        self._zones = by_origin
        self._names = names
        self.clear_cache()

    def clear_cache(self) -> None:
        self._cache.clear()

    def set_fault(self, zone: str, mode: str | None) -> None:
        """Make a zone fail: "servfail", "nxdomain" (every name), "timeout" (no answer); None heals it."""
        origin, _z = self._zone(zone)
        if mode is None:
            self.faults.pop(origin, None)
        elif mode in FAULT_MODES:
            self.faults[origin] = mode
        else:
            raise ValueError(f"unknown DNS fault {mode!r}; choose one of {', '.join(FAULT_MODES)}")
        self.clear_cache()

    def records(self) -> list[Record]:
        """Every record of every zone: zones in name order, SOA and NS first in each."""
        out: list[Record] = []
        for origin in sorted(self._zones, key=lambda n: n.to_text()):
            zone_text = origin.to_text(omit_final_dot=True)
            for name, ttl, rdata in self._zones[origin].iterate_rdatas():
                out.append(Record(zone_text, name.to_text(omit_final_dot=True), ttl,
                                  dns.rdatatype.to_text(rdata.rdtype), rdata.to_text()))
        first = {"SOA": 0, "NS": 1}
        out.sort(key=lambda r: (r.zone, r.name != r.zone, r.name, first.get(r.rdtype, 2), r.rdtype, r.data))
        return out

    def replace_record(self, zone: str, name: str, rdtype: str, old: str, new: str,
                       ttl: int | None = None) -> Record:
        """Replace the record `name rdtype old` of `zone` by `new` (and `ttl`, if given).

        KeyError for an unknown zone or record, ValueError for bad data.
        """
        origin, z, owner, kind = self._locate(zone, name, rdtype)
        rds, current = self._find(origin, owner, kind, old)
        replacement = _parse(origin, kind, new)
        _check_ttl(ttl)
        if replacement != current and replacement in rds:
            raise ValueError(f"{_show(owner)} {dns.rdatatype.to_text(kind)} {replacement} is already there")
        updated = _rdataset(kind, rds.ttl if ttl is None else ttl,
                            [replacement if r is current else r for r in rds])
        z.replace_rdataset(owner, updated)
        self._changed(origin)
        return _record(origin, owner, updated.ttl, replacement)

    def add_record(self, zone: str, name: str, rdtype: str, data: str, ttl: int | None = None) -> Record:
        """Add the record `name rdtype data` to `zone` (RFC 2136 §3.4.2.2, `nsupdate`'s update add).

        Without `ttl` it takes its RRset's TTL, or the zone's default for a new
        RRset; with `ttl`, the whole RRset takes it (RFC 2181 §5.2).
        KeyError for an unknown zone, ValueError for bad data or a refused add.
        """
        origin, z, owner, kind = self._locate(zone, name, rdtype)
        record = _parse(origin, kind, data)
        _check_ttl(ttl)
        node = z.get_node(owner)
        rds = node.get_rdataset(dns.rdataclass.IN, kind) if node is not None else None
        what = dns.rdatatype.to_text(kind)
        if rds is not None and record in rds:
            raise ValueError(f"{_show(owner)} {what} {record} is already there")
        if rds is not None and dns.rdatatype.is_singleton(kind):
            raise ValueError(f"{_show(owner)} already has a {what} record and can have only one "
                             "(RFC 2181 §10.1): edit that one instead")
        if node is not None:
            _check_cname_rule(owner, kind, node)
        if ttl is None:
            ttl = rds.ttl if rds is not None else self._default_ttl(origin)
        updated = _rdataset(kind, ttl, [*(rds or ()), record])
        z.replace_rdataset(owner, updated)
        self._changed(origin)
        return _record(origin, owner, updated.ttl, record)

    def delete_record(self, zone: str, name: str, rdtype: str, data: str) -> Record:
        """Delete the record `name rdtype data` from `zone` (RFC 2136 §3.4.2.3); returns it.

        KeyError for an unknown zone or record, ValueError for bad data or a
        refused delete (the SOA, the last NS at the apex).
        """
        origin, z, owner, kind = self._locate(zone, name, rdtype)
        rds, current = self._find(origin, owner, kind, data)
        if owner == origin and kind == dns.rdatatype.NS and len(rds) == 1:
            raise ValueError(f"{current} is the last NS record of {_show(origin)}: a zone needs one at its "
                             "apex (RFC 1034 §4.2.1, RFC 2136 §3.4.2.4); add another NS first")
        if len(rds) == 1:
            z.delete_rdataset(owner, kind)       # and the node, if that was all it had
        else:
            z.replace_rdataset(owner, _rdataset(kind, rds.ttl, [r for r in rds if r != current]))
        self._changed(origin)
        return _record(origin, owner, rds.ttl, current)

    def _zone(self, zone: str) -> tuple[dns.name.Name, dns.zone.Zone]:
        """The origin and zone named `zone`; KeyError when this world has no such zone."""
        try:
            origin = dns.name.from_text(zone.strip())
        except dns.exception.DNSException:
            raise KeyError(f"no zone {zone} in this world") from None
        z = self._zones.get(origin)
        if z is None:
            raise KeyError(f"no zone {zone} in this world")
        return origin, z

    def _locate(self, zone: str, name: str,
                rdtype: str) -> tuple[dns.name.Name, dns.zone.Zone, dns.name.Name, dns.rdatatype.RdataType]:
        """(origin, zone, owner, type) of an edit; what no edit may touch is refused here."""
        origin, z = self._zone(zone)
        try:
            kind = dns.rdatatype.from_text(rdtype.strip())
        except (dns.exception.DNSException, ValueError):
            raise ValueError(f"unknown record type {rdtype!r}") from None
        if kind == dns.rdatatype.SOA:
            raise ValueError("the SOA record is the lab's own (its serial counts your changes): "
                             "change another record")
        if dns.rdatatype.is_metatype(kind) or kind in (dns.rdatatype.RRSIG, dns.rdatatype.SIG):
            raise ValueError(f"{dns.rdatatype.to_text(kind)} is not a record type the lab's zones hold")
        text = name.strip()
        if not text:
            raise ValueError("give the record a name (@ for the zone apex)")
        try:
            if text == "@":
                owner = origin
            elif text.endswith("."):
                owner = dns.name.from_text(text)
            else:     # relative, unless already written out under the zone, as records() shows it
                owner = dns.name.from_text(text)
                if not owner.is_subdomain(origin):
                    owner = dns.name.from_text(text, origin=origin)
        except dns.exception.DNSException as e:
            raise ValueError(f"not a valid name {name!r}: {e}") from None
        if not owner.is_subdomain(origin):
            raise ValueError(f"{_show(owner)} is not inside zone {_show(origin)}")
        home = self._zone_for(owner)
        if home != origin:
            raise ValueError(f"{_show(owner)} belongs to zone {_show(home)}: change it there")
        return origin, z, owner, kind

    def _find(self, origin: dns.name.Name, owner: dns.name.Name, kind: dns.rdatatype.RdataType,
              data: str) -> tuple[dns.rdataset.Rdataset, dns.rdata.Rdata]:
        """The RRset at `owner` and its record equal to `data`; KeyError if there is none."""
        wanted = _parse(origin, kind, data)
        rds = self._zones[origin].get_rdataset(owner, kind)
        current = next((r for r in rds or () if r == wanted), None)
        if rds is None or current is None:
            raise KeyError(f"no record {_show(owner)} {dns.rdatatype.to_text(kind)} {wanted} "
                           f"in zone {_show(origin)}")
        return rds, current

    def _default_ttl(self, origin: dns.name.Name) -> int:
        """The TTL of a new RRset: min(SOA TTL, MINIMUM), as negative answers get (RFC 2308 §3)."""
        soa = self._zones[origin].get_rdataset(origin, dns.rdatatype.SOA)
        return _negative_ttl(soa) if soa is not None else 300

    def _changed(self, origin: dns.name.Name) -> None:
        """After an edit of zone `origin`: names that exist, SOA serial, cached answers."""
        self._names[origin] = _existing_names(origin, self._zones[origin])
        self._bump_serial(origin)
        self.clear_cache()

    def _bump_serial(self, origin: dns.name.Name) -> None:
        """A changed zone gets a higher SOA serial (RFC 1034 §4.3.5, RFC 1982 arithmetic)."""
        z = self._zones[origin]
        soa = z.get_rdataset(origin, dns.rdatatype.SOA)
        if soa is None:
            return
        bumped = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
        bumped.update_ttl(soa.ttl)
        bumped.add(soa[0].replace(serial=(soa[0].serial + 1) % 2**32))
        z.replace_rdataset(origin, bumped)

    # -- the one entry point -------------------------------------------------

    def respond(self, wire: bytes, max_udp: int | None) -> tuple[bytes | None, QueryInfo | None]:
        """Answer one query; `max_udp` is the UDP ceiling, None over TCP."""
        if len(wire) < 12 or wire[2] & 0x80:     # no header, or a response: ignore
            return None, None
        key = (wire[2:], max_udp)
        cached = self._cache.get(key)
        if cached is not None:
            self.hits += 1
            return wire[:2] + cached[0][2:], cached[1]
        self.misses += 1
        try:
            reply, info, cacheable = self._respond(wire, max_udp)
        except Exception:        # a bug of ours must not kill the server
            return _header_only(wire, dns.rcode.SERVFAIL), QueryInfo("", "", "SERVFAIL", 0)
        if not reply:
            return None, info    # a "timeout" fault: say nothing
        if cacheable and len(wire) <= _CACHE_QUERY_MAX and len(reply) <= _CACHE_REPLY_MAX:
            if len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]     # oldest first
            self._cache[key] = (reply, info)
        return reply, info

    # -- internals -----------------------------------------------------------

    def _respond(self, wire: bytes, max_udp: int | None) -> tuple[bytes, QueryInfo, bool]:
        if dns.opcode.from_flags(int.from_bytes(wire[2:4], "big")) != dns.opcode.QUERY:
            return *_not_implemented(wire), False
        try:
            query = dns.message.from_wire(wire, keyring=False)     # a TSIG is read, not verified
        except Exception:
            return _header_only(wire, dns.rcode.FORMERR), QueryInfo("", "", "FORMERR", 0), False
        if query.had_tsig:
            return _bad_key(query, _limit(query, max_udp)), _info(query, "NOTAUTH"), False
        if len(query.question) != 1:
            return _header_only(wire, dns.rcode.FORMERR), QueryInfo("", "", "FORMERR", 0), False
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        response = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
        if query.edns > 0:
            response.set_rcode(dns.rcode.BADVERS)                 # RFC 6891 §6.1.3
        elif question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
            response.set_rcode(dns.rcode.REFUSED)
        elif qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            response.set_rcode(dns.rcode.REFUSED)                 # no zone transfers
        elif self.faults and self._zone_for(qname) in self.faults:
            fault = self.faults[self._zone_for(qname)]
            info = QueryInfo(qname.to_text(omit_final_dot=True), dns.rdatatype.to_text(qtype),
                             f"{fault.upper()} (simulated fault)", 0)
            if fault == "timeout":
                return b"", info, False
            response.set_rcode(dns.rcode.SERVFAIL if fault == "servfail" else dns.rcode.NXDOMAIN)
            return response.to_wire(), info, False
        else:
            self._answer(response, qname, qtype)

        reply = response.to_wire(max_size=_limit(query, max_udp), prefer_truncation=True, want_shuffle=False)
        name = qname.to_text(omit_final_dot=True) or "."
        info = QueryInfo(name, dns.rdatatype.to_text(qtype), dns.rcode.to_text(response.rcode()),
                         int.from_bytes(reply[6:8], "big"))           # ANCOUNT as sent
        return reply, info, True

    def _zone_for(self, name: dns.name.Name) -> dns.name.Name | None:
        """The origin of the longest matching zone (RFC 1034 §4.3.2 step 2)."""
        while True:
            if name in self._zones:
                return name
            if name == dns.name.root:
                return None
            name = name.parent()

    def _answer(self, response: dns.message.Message, qname: dns.name.Name, qtype: int) -> None:
        origin = self._zone_for(qname)
        if origin is None:
            response.set_rcode(dns.rcode.REFUSED)
            return
        response.flags |= dns.flags.AA
        name, seen = qname, {qname}
        for _ in range(MAX_CNAME_CHAIN + 1):
            zone = self._zones[origin]
            cut = self._delegation(origin, name)
            if cut is not None:
                if name == qname:
                    response.flags &= ~dns.flags.AA               # a referral is not authoritative
                ns = zone.nodes[cut].get_rdataset(dns.rdataclass.IN, dns.rdatatype.NS)
                response.authority.append(_rrset(cut, ns))
                self._add_addresses(response, [r.target for r in ns])
                return
            node = self._find_node(origin, name)
            if node is None:
                if name not in self._names[origin]:
                    response.set_rcode(dns.rcode.NXDOMAIN)        # RFC 6604: rcode of the last name
                self._add_soa(response, origin)
                return
            if qtype == dns.rdatatype.ANY:
                for rds in node.rdatasets:
                    response.answer.append(_rrset(name, rds))
                self._add_additionals(response)
                return
            rds = node.get_rdataset(dns.rdataclass.IN, qtype)
            if rds is not None:
                response.answer.append(_rrset(name, rds))
                self._add_additionals(response)
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                self._add_soa(response, origin)                   # NODATA
                return
            response.answer.append(_rrset(name, cname))
            name = cname[0].target
            origin = self._zone_for(name)
            if origin is None or name in seen:                    # left our zones, or a loop
                return
            seen.add(name)

    def _delegation(self, origin: dns.name.Name, name: dns.name.Name) -> dns.name.Name | None:
        """The highest zone cut (NS below the apex) at or above `name`, if any."""
        zone = self._zones[origin]
        labels = len(name) - len(origin)
        for depth in range(1, labels + 1):
            _, cut = name.split(len(origin) + depth)
            node = zone.nodes.get(cut)
            if node is not None and node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NS):
                return cut
        return None

    def _find_node(self, origin: dns.name.Name, name: dns.name.Name) -> dns.node.Node | None:
        """The node at `name`, or the wildcard that synthesizes it (RFC 4592 §3.3.1)."""
        zone = self._zones[origin]
        node = zone.nodes.get(name)
        if node is not None or name in self._names[origin]:
            return node
        encloser = name.parent()
        while encloser not in self._names[origin]:
            encloser = encloser.parent()
        return zone.nodes.get(dns.name.Name((b"*",) + encloser.labels))

    def _add_soa(self, response: dns.message.Message, origin: dns.name.Name) -> None:
        soa = self._zones[origin].nodes[origin].get_rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
        if soa is None:
            return
        rrset = _rrset(origin, soa)
        rrset.ttl = _negative_ttl(soa)
        response.authority.append(rrset)

    def _add_additionals(self, response: dns.message.Message) -> None:
        targets: list[dns.name.Name] = []
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.MX:
                targets.extend(r.exchange for r in rrset)
            elif rrset.rdtype == dns.rdatatype.NS:
                targets.extend(r.target for r in rrset)
            elif rrset.rdtype == dns.rdatatype.SRV:
                targets.extend(r.target for r in rrset)
        self._add_addresses(response, targets)

    def _add_addresses(self, response: dns.message.Message, targets: list[dns.name.Name]) -> None:
        """A and AAAA of the targets that are in our zones (RFC 1035 §3.3.9)."""
        present = {(r.name, r.rdtype) for r in response.answer + response.additional}
        for target in targets:
            origin = self._zone_for(target)
            if origin is None:
                continue
            node = self._zones[origin].nodes.get(target)
            if node is None:
                continue
            for rdtype in _ADDRESS_TYPES:
                rds = node.get_rdataset(dns.rdataclass.IN, rdtype)
                if rds is not None and (target, rdtype) not in present:
                    present.add((target, rdtype))
                    response.additional.append(_rrset(target, rds))


# types that may sit beside a CNAME (RFC 2181 §10.1, RFC 4035 §2.5)
_BESIDE_CNAME = (dns.rdatatype.CNAME, dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.SIG,
                 dns.rdatatype.NXT, dns.rdatatype.KEY)


def _existing_names(origin: dns.name.Name, zone: dns.zone.Zone) -> set[dns.name.Name]:
    """Every owner name of `zone` and its ancestors up to the apex: the names that exist (RFC 8020)."""
    existing: set[dns.name.Name] = set()
    for owner in zone.nodes:
        while owner not in existing and owner.is_subdomain(origin):
            existing.add(owner)
            if owner == origin:
                break
            owner = owner.parent()
    return existing


def _parse(origin: dns.name.Name, kind: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    """Record data in presentation form; names in it relative to `origin` unless they end with a dot."""
    try:
        return dns.rdata.from_text(dns.rdataclass.IN, kind, text.strip(), origin=origin, relativize=False)
    except (dns.exception.DNSException, ValueError) as e:
        raise ValueError(f"not valid {dns.rdatatype.to_text(kind)} data {text!r}: {e}") from None


def _check_ttl(ttl: int | None) -> None:
    if ttl is not None and not 0 <= ttl <= 2**31 - 1:
        raise ValueError(f"TTL {ttl} out of range (RFC 2181 §8)")


def _check_cname_rule(owner: dns.name.Name, kind: dns.rdatatype.RdataType, node: dns.node.Node) -> None:
    """A CNAME and other data never share a name (RFC 1034 §3.6.2, RFC 2181 §10.1)."""
    types = [rds.rdtype for rds in node.rdatasets]
    if kind == dns.rdatatype.CNAME:
        others = sorted(dns.rdatatype.to_text(t) for t in types if t not in _BESIDE_CNAME)
        if others:
            raise ValueError(f"{_show(owner)} already has {', '.join(others)} data, and a CNAME can not "
                             "sit beside other data (RFC 1034 §3.6.2, RFC 2181 §10.1)")
    elif kind not in _BESIDE_CNAME and dns.rdatatype.CNAME in types:
        target = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)[0]
        raise ValueError(f"{_show(owner)} is an alias (CNAME {target}), and no other data can sit "
                         "beside a CNAME (RFC 1034 §3.6.2, RFC 2181 §10.1)")


def _rdataset(kind: dns.rdatatype.RdataType, ttl: int, rdatas: list[dns.rdata.Rdata]) -> dns.rdataset.Rdataset:
    rds = dns.rdataset.Rdataset(dns.rdataclass.IN, kind)
    rds.update_ttl(ttl)
    for r in rdatas:
        rds.add(r)
    return rds


def _record(origin: dns.name.Name, owner: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> Record:
    return Record(_show(origin), _show(owner), ttl, dns.rdatatype.to_text(rdata.rdtype), rdata.to_text())


def _show(name: dns.name.Name | None) -> str:
    return name.to_text(omit_final_dot=True) if name is not None else "?"


def _negative_ttl(soa: dns.rdataset.Rdataset) -> int:
    """How long a negative answer may be cached: min(SOA TTL, MINIMUM) (RFC 2308 §3)."""
    return min(soa.ttl, soa[0].minimum)


def _rrset(name: dns.name.Name, rds: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    """The rdataset under `name`, in canonical order (MX by preference, A by address)."""
    return dns.rrset.from_rdata_list(name, rds.ttl, sorted(rds))


def _limit(query: dns.message.Message, max_udp: int | None) -> int:
    """The largest reply the query's transport takes (`max_udp` None: TCP)."""
    if max_udp is None:
        return _TCP_MAX
    if query.edns >= 0:
        return min(max(query.payload, 512), max_udp)              # RFC 6891 §6.2.5
    return min(512, max_udp)                                      # RFC 1035 §4.2.1


def _info(query: dns.message.Message, rcode: str) -> QueryInfo:
    """The log line of a query refused before it was looked up: its question, if it had one."""
    if len(query.question) != 1:
        return QueryInfo("", "", rcode, 0)
    question = query.question[0]
    return QueryInfo(question.name.to_text(omit_final_dot=True) or ".",
                     dns.rdatatype.to_text(question.rdtype), rcode, 0)


def _not_implemented(wire: bytes) -> tuple[bytes, QueryInfo]:
    """NOTIMP for an opcode other than QUERY, whatever follows the header (RFC 1035 §4.1.1,
    RFC 6895 §2.2): ID, opcode and RD echoed, QR set, and the question if exactly one was
    sent and could be read."""
    try:
        query = dns.message.from_wire(wire, question_only=True)
    except Exception:
        query = None
    if query is None or len(query.question) != 1:
        return _header_only(wire, dns.rcode.NOTIMP), QueryInfo("", "", "NOTIMP", 0)
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.NOTIMP)
    return response.to_wire(), _info(query, "NOTIMP")


def _bad_key(query: dns.message.Message, limit: int) -> bytes:
    """NOTAUTH for a TSIG-signed query, the lab knowing no keys (RFC 8945 §5.2.1): an unsigned
    TSIG (empty MAC, RFC 8945 §5.3.2) with error BADKEY, the query's key name, algorithm,
    time signed, fudge and original ID."""
    assert query.tsig is not None
    response = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
    response.set_rcode(dns.rcode.NOTAUTH)
    signed = query.tsig[0]
    response.tsig = dns.rrset.from_rdata(query.tsig.name, 0,
                                         signed.replace(mac=b"", error=dns.rcode.BADKEY, other=b""))
    return response.to_wire(max_size=limit, prefer_truncation=True)


def _header_only(wire: bytes, rcode: int) -> bytes:
    """A reply of just a header: same ID, opcode and RD, QR set, no records."""
    flags = int.from_bytes(wire[2:4], "big")
    flags = _QR | (flags & 0x7900) | (rcode & 0xF)               # keep opcode and RD
    return wire[:2] + flags.to_bytes(2, "big") + bytes(8)
