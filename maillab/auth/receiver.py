"""The receiving MTA's sender-authentication checks, as checkpoints (`smtp.checkpoints`).

`spf_check(host, address, resolver)` is the "spf" check: at MAIL FROM it asks
SPF (`auth.spf`) whether the client's address may send for the envelope
sender's domain (the HELO name's, for the null sender), logs the result, and
at the end of data tags the message with `Received-SPF:` (RFC 7208 §9.1) and
an `Authentication-Results:` field (RFC 8601 §2.2) whose authserv-id is the
receiving host.  Mail from a logged-in user (submission) is not checked: the
login, not the address, says who it is.  A result is kept per (client IP,
HELO, MAIL FROM) for the transaction's end; the memo is bounded.
"""

from __future__ import annotations

from typing import Callable

from ..dns.client import LabResolver
from ..smtp.checkpoints import ACCEPT, Check, Facts, Verdict, tag
from .spf import SpfResult, check

MEMO = 1024


def authentication_results(host: str, spf: SpfResult) -> str:
    """The Authentication-Results field (RFC 8601): the SPF result and the identity it was about."""
    prop = f"smtp.mailfrom={spf.domain}" if spf.identity == "mailfrom" else f"smtp.helo={spf.domain}"
    why = f" ({spf.mechanism} matched)" if spf.mechanism else ""
    return f"Authentication-Results: {host}; spf={spf.result}{why} {prop}"


def spf_check(host: str, address: str, resolver: Callable[[], LabResolver]) -> Check:
    known: dict[tuple[str, str, str], SpfResult] = {}

    async def result(f: Facts) -> SpfResult:
        key = (f.client_ip, f.helo, f.sender or "")
        found = known.get(key)
        if found is None:
            found = await check(resolver(), address, ip=f.client_ip, sender=f.sender or "", helo=f.helo,
                                receiver=host)
            if len(known) >= MEMO:
                del known[next(iter(known))]
            known[key] = found
        return found

    async def spf(f: Facts) -> Verdict:
        if f.login is not None or f.sender is None:
            return ACCEPT
        found = await result(f)
        reason = f"spf={found.result} {found.identity}={found.domain or '-'} client-ip={f.client_ip}" + \
                 (f" mechanism={found.mechanism}" if found.mechanism else "")
        if f.stage == "mail":
            return tag(reason=reason)                # said in the maillog at MAIL FROM; headers at the end
        return tag(f"Received-SPF: {found.received_spf}", authentication_results(host, found), reason=reason)

    return Check("spf", frozenset({"mail", "data"}), spf)
