"""The RFC 7208 test suite (openspf.org's, as pyspf ships it: tests/data/spf/) through the lab's own
wiring: each section's zone data served by the lab DNS server (`Authority` + `DnsServer`), every
look-up made by `auth.spf` over `LabResolver`, as the MTAs make them.

Where they apply: a test that asks a name meant to time out ("TIMEOUT" in its zone data: the lab
DNS answers every name it holds at once) is left out, and so are records whose owner is no valid
DNS name (the suite's own "invalid name" cases keep them out of any zone, which is what they test).
As the suite asks of its drivers, a name given only type SPF records (99, RFC 4408's) gets them
as TXT too.
"""

from __future__ import annotations

from pathlib import Path

import dns.exception
import dns.name
import dns.rdata
import dns.zone
import pytest
import yaml

from maillab.auth import spf as lab_spf
from maillab.base.clock import Clock
from maillab.base.events import EventBus
from maillab.dns.authority import Authority
from maillab.dns.client import LabResolver
from maillab.dns.server import DnsServer

from netutil import free_port

SUITE = Path(__file__).parent / "data" / "spf" / "rfc7208-tests.yml"
SECTIONS = list(yaml.safe_load_all(SUITE.read_text(encoding="utf-8")))


def _txt(value: str | list[str]) -> str:
    """TXT data as zone-file text: each string quoted, split at 255 octets (RFC 1035 §3.3.14)."""
    parts = value if isinstance(value, list) else [value]
    chunks = []
    for part in parts:
        raw = part.encode("utf-8")
        pieces = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
        for piece in pieces:
            text = "".join(chr(b) if 0x20 <= b < 0x7F and b not in b'"\\' else f"\\{b:03d}" for b in piece)
            chunks.append(f'"{text}"')
    return " ".join(chunks)


def _zone(zonedata: dict) -> tuple[dns.zone.Zone, set[str]]:
    """One root zone holding a section's records (each that parses); the names meant to time out."""
    zone = dns.zone.Zone(dns.name.root, relativize=False)
    _add(zone, ".", "SOA", "ns.test. hostmaster.test. 1 3600 600 86400 300")
    _add(zone, ".", "NS", "ns.test.")
    timeouts = set()
    for owner, records in zonedata.items():
        kinds = {k for r in records if isinstance(r, dict) for k in r}
        if "SPF" in kinds and "TXT" not in kinds:     # the suite's drivers copy type SPF to TXT (see its head)
            records = [*records, *({"TXT": r["SPF"]} for r in records if isinstance(r, dict) and "SPF" in r)]
        for record in records:
            if record == "TIMEOUT":
                timeouts.add(owner.lower().rstrip("."))
                continue
            (kind, value), = record.items()
            if value == "NONE":
                continue
            if kind in ("TXT", "SPF"):
                data = _txt(value)
            elif kind == "MX":
                data = f"{value[0]} {value[1]}."
            elif kind in ("CNAME", "PTR"):
                data = f"{value}."
            else:
                data = str(value)
            _add(zone, owner, kind, data)
    return zone, timeouts


def _add(zone: dns.zone.Zone, owner: str, kind: str, data: str) -> None:
    """One record, unless its owner or data is no valid DNS (the suite's invalid-name cases)."""
    try:
        name = dns.name.from_text(owner)
        rdata = dns.rdata.from_text("IN", kind, data, origin=dns.name.root, relativize=False)
    except (dns.exception.DNSException, ValueError):
        return
    zone.find_rdataset(name, rdata.rdtype, create=True).add(rdata, 300)


def _cases():
    for section in SECTIONS:
        for name, test in section["tests"].items():
            yield pytest.param(section, test, id=name)


@pytest.fixture(scope="module")
def served():
    """One lab DNS server; each test gives it its section's zone."""
    import asyncio
    loop = asyncio.new_event_loop()
    server = DnsServer(Authority({}), EventBus(), Clock(), "127.0.0.1", free_port())
    loop.run_until_complete(server.start())
    yield loop, server
    loop.run_until_complete(server.stop())
    loop.close()


@pytest.mark.parametrize(("section", "test"), _cases())
def test_rfc7208_suite_through_the_lab_dns(served, section, test):
    loop, server = served
    zone, timeouts = _zone(section["zonedata"])
    server.authority.set_zones({".": zone})
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    resolver = LabResolver("127.0.0.1", server.port, timeout=2.0)

    async def run() -> lab_spf.SpfResult:
        try:
            return await lab_spf.check(resolver, None, ip=test["host"], sender=test.get("mailfrom") or "",
                                       helo=test.get("helo") or "", receiver="receiver.test")
        finally:
            resolver.close()
    got = loop.run_until_complete(run())
    if any(lookup.name.lower().rstrip(".") in timeouts for lookup in got.lookups):
        pytest.skip("it asks a name meant to time out; the lab DNS answers every name at once")
    assert got.result in expected, f"{test.get('description', '')} ({test.get('spec')}): {got}"
