"""DKIM (RFC 6376, Ed25519 by RFC 8463) with dkimpy: signing at the sender's submission host, verifying
every signature at the receivers, the keys' records fetched from the lab DNS.

`sign(keys, message)` gives the DKIM-Signature fields (one per key: RSA and
Ed25519, relaxed/relaxed, over the fields a reader sees) to put on top of
`message`.  `verify(resolver, source, message)` gives a `DkimResult` per
DKIM-Signature field: the key records are fetched first, on the loop, with the
lab's `LabResolver` (the DNS panel shows each); dkimpy then checks each
signature in a worker thread against those records only — it never asks DNS
itself — and a failure keeps dkimpy's reason ("body hash mismatch", ...).
Both run their CPU work off the loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import dkim as dkimpy
from dkim.util import InvalidTagValueList, parse_tag_value

from ..dns.client import LabResolver, LookupFailed
from .dkim_keys import DomainKeys

SIGNED_FIELDS = (b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"in-reply-to", b"references",
                 b"mime-version", b"content-type", b"content-transfer-encoding", b"reply-to")


@dataclass(frozen=True, slots=True)
class DkimResult:
    result: str                  # pass, fail, neutral (a signature too broken to check), temperror
    domain: str                  # d=
    selector: str                # s=
    algorithm: str               # a=
    reason: str = ""             # why not pass


class Unsignable(Exception):
    """The message can not carry a DKIM signature (no From field, RFC 6376 §5.4); str() says why."""


def _sign(keys: DomainKeys, message: bytes) -> list[str]:
    present = {name.lower() for name, _ in dkimpy.DKIM(message).headers}
    if b"from" not in present:
        raise Unsignable("no From header field to sign (RFC 6376 §5.4)")
    signed = [f for f in SIGNED_FIELDS if f in present]   # one absent now and added later would break it
    fields = []
    for key in keys.keys:
        field = dkimpy.sign(message, key.selector.encode(), keys.domain.encode(), key.private,
                            canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=key.algorithm,
                            include_headers=signed)   # raises DKIMException on a malformed header
        fields.append(field.decode("ascii").rstrip("\r\n"))
    return fields


async def sign(keys: DomainKeys, message: bytes) -> list[str]:
    """The DKIM-Signature header fields (folded, without the last CRLF) for `message`;
    `Unsignable` when it can not be signed."""
    try:
        return await asyncio.to_thread(_sign, keys, message)
    except dkimpy.DKIMException as e:
        raise Unsignable(str(e)) from None


class _Reasons(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.said: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.said.append(record.getMessage())


def _signatures(message: bytes) -> list[dict[bytes, bytes]]:
    out = []
    for name, value in dkimpy.DKIM(message).headers:
        if name.lower() == b"dkim-signature":
            try:
                out.append(parse_tag_value(value))
            except InvalidTagValueList:
                out.append({})
    return out


def _check(message: bytes, records: dict[str, bytes | None], count: int) -> list[tuple[bool, str]]:
    out = []
    for idx in range(count):
        reasons = _Reasons()
        logger = logging.getLogger(f"maillab.dkim.{id(reasons)}")
        logger.propagate = False
        logger.addHandler(reasons)
        try:
            ok = dkimpy.DKIM(message, logger=logger).verify(
                idx=idx, dnsfunc=lambda name, timeout=5: records.get(name.decode().rstrip(".").lower()))
        except dkimpy.DKIMException as e:
            ok, reasons.said = False, [str(e)]
        finally:
            logger.removeHandler(reasons)
        out.append((bool(ok), "; ".join(reasons.said)))
    return out


async def verify(resolver: LabResolver, source: str | None, message: bytes) -> list[DkimResult]:
    """Each DKIM-Signature's verdict, in the order of the fields."""
    tags = await asyncio.to_thread(_signatures, message)
    records: dict[str, bytes | None] = {}
    lookup_failed: dict[str, LookupFailed] = {}
    for t in tags:
        domain, selector = t.get(b"d", b"").decode(errors="replace"), t.get(b"s", b"").decode(errors="replace")
        name = f"{selector}._domainkey.{domain}".lower()
        if not domain or not selector or name in records:
            continue
        try:
            found = await resolver.records(name, "TXT", source)
            records[name] = b"".join(b"".join(r.strings) for r in found) if found else None
        except LookupFailed as e:
            records[name] = None
            lookup_failed[name] = e
    checked = await asyncio.to_thread(_check, message, records, len(tags))
    out = []
    for t, (ok, reason) in zip(tags, checked):
        domain, selector = t.get(b"d", b"").decode(errors="replace"), t.get(b"s", b"").decode(errors="replace")
        failed = lookup_failed.get(f"{selector}._domainkey.{domain}".lower())
        if ok:
            result = "pass"
        elif failed is not None and failed.temporary:
            result, reason = "temperror", failed.reason
        elif not t or failed is not None:
            result = "permerror" if t else "neutral"
            reason = failed.reason if failed is not None else reason or "the signature field does not parse"
        else:
            result = "fail"
        out.append(DkimResult(result, domain, selector, t.get(b"a", b"").decode(errors="replace"), reason))
    return out
