"""SPF (RFC 7208) for the lab's receiving MTAs: pyspf's evaluation, every look-up through the lab DNS.

`check(resolver, source, ip=, sender=, helo=, receiver=)` asks whether `ip`
may send mail for the MAIL FROM domain (the HELO name for the null sender,
RFC 7208 §2.3/§2.4) and gives an `SpfResult`: the result (pass, fail,
softfail, neutral, none, permerror, temperror), the mechanism that decided,
pyspf's explanation, the `Received-SPF:` value it writes (RFC 7208 §9.1), and
every DNS look-up made, in order, with what the lab DNS answered — the trail
a step-through shows.

pyspf evaluates synchronously and resolves through its module-level
`spf.DNSLookup`; it runs here in a worker thread (nothing blocks the loop),
and `spf.DNSLookup` is replaced by `_lookup`, which hands each question back
to the lab's own `LabResolver` on the loop (from the receiving host's
address, so the DNS panel shows who asked) and waits for it.  Which resolver
a thread uses travels in a context variable: with none set, a look-up is a
temperror — the real DNS is never asked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from dataclasses import dataclass, field

import spf as pyspf

from ..dns.client import LabResolver, LookupFailed

LOOKUP_TIMEOUT = 5.0              # each DNS question (RFC 7208 §4.6.4 bounds the count, not the time)
RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")


@dataclass(frozen=True, slots=True)
class Lookup:
    name: str
    rdtype: str
    answer: tuple[str, ...]      # the records as text; () for none (NXDOMAIN or NODATA)
    failure: str = ""            # what went wrong, if it did


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: str                  # one of RESULTS
    domain: str                  # the identity's domain
    identity: str                # "mailfrom" or "helo"
    mechanism: str               # what matched ("-all", "mx", "ip4:127.0.0.1"), "" if none did
    explanation: str
    received_spf: str            # the Received-SPF field's value
    lookups: tuple[Lookup, ...] = field(default=())


@dataclass(slots=True)
class _Via:
    loop: asyncio.AbstractEventLoop
    resolver: LabResolver
    source: str | None
    lookups: list[Lookup]


_via: contextvars.ContextVar[_Via] = contextvars.ContextVar("maillab_spf_via")


def _lookup(name: str, qtype: str, strict: bool = True, timeout: float = LOOKUP_TIMEOUT) -> list:
    """pyspf's DNSLookup: [((name, qtype), value), ...] from the lab DNS, asked on the lab's loop."""
    via = _via.get(None)
    if via is None:
        raise pyspf.TempError("DNS: no lab resolver here (maillab never asks the real DNS)")
    asked = asyncio.run_coroutine_threadsafe(via.resolver.records(name, qtype, via.source), via.loop)
    try:
        rrset = asked.result(min(timeout, LOOKUP_TIMEOUT))
    except LookupFailed as e:
        via.lookups.append(Lookup(name, qtype, (), e.reason))
        if e.temporary:
            raise pyspf.TempError(f"DNS {e.reason}") from None
        return []                                     # NXDOMAIN: no records
    except concurrent.futures.TimeoutError:
        asked.cancel()
        via.lookups.append(Lookup(name, qtype, (), "timeout"))
        raise pyspf.TempError(f"DNS timeout asking {name} {qtype}") from None
    if rrset is None:
        via.lookups.append(Lookup(name, qtype, ()))
        return []
    via.lookups.append(Lookup(name, qtype, tuple(r.to_text() for r in rrset)))
    key = (name, qtype)
    if qtype in ("A", "AAAA"):
        return [(key, r.address) for r in rrset]
    if qtype == "MX":
        return [(key, (r.preference, r.exchange)) for r in rrset]
    if qtype == "PTR":
        return [(key, r.target.to_text(True)) for r in rrset]
    if qtype in ("TXT", "SPF"):
        return [(key, r.strings) for r in rrset]
    return []


pyspf.DNSLookup = _lookup


def _evaluate(ip: str, sender: str, helo: str, receiver: str) -> tuple[str, str, str, str, str, str]:
    q = pyspf.query(i=ip, s=sender, h=helo, receiver=receiver, timeout=4 * LOOKUP_TIMEOUT)
    result, _code, explanation = q.check()
    return (result, q.d or "", q.ident, q.mechanism or "", explanation,
            q.get_header(result, receiver=receiver))


async def check(resolver: LabResolver, source: str | None, *, ip: str, sender: str, helo: str,
                receiver: str) -> SpfResult:
    """The SPF verdict for `ip` sending as `sender` (MAIL FROM; "" the null sender) after `helo`."""
    via = _Via(asyncio.get_running_loop(), resolver, source, [])
    token = _via.set(via)
    try:
        result, domain, identity, mechanism, explanation, header = await asyncio.to_thread(
            _evaluate, ip, sender, helo, receiver)
    finally:
        _via.reset(token)
    return SpfResult(result, domain, identity, mechanism, explanation, header, tuple(via.lookups))
