"""Sender authentication on the receive path, as checkpoints (`smtp.checkpoints`).

`sender_checks(host, address, resolver, keys_for)` gives two checks:

- "dkim_sign", at the end of data, for a logged-in sender of a domain this
  host keeps the mail of (`keys_for(domain)`): the message gets its
  DKIM-Signature fields (RSA and Ed25519, `auth.dkim`), as Postfix with
  OpenDKIM signs on the submission host;
- "sender_auth", for everyone else: at MAIL FROM it asks SPF (`auth.spf`)
  whether the client's address may send for the envelope sender's domain (the
  HELO name's, for the null sender) and logs the result; at the end of data it
  verifies every DKIM signature and tags the message with `Received-SPF:`
  (RFC 7208 §9.1) and one `Authentication-Results:` field (RFC 8601 §2.2)
  whose authserv-id is the receiving host.

Mail from a logged-in user is not checked: the login, not the address, says
who it is.  An SPF result is kept per (client IP, HELO, MAIL FROM) for the
transaction's end; the memo is bounded.
"""

from __future__ import annotations

from typing import Callable

from ..dns.client import LabResolver
from ..smtp.checkpoints import ACCEPT, Check, Facts, Verdict, tag
from .dkim import DkimResult, Unsignable, sign, verify
from .dkim_keys import DomainKeys
from .spf import SpfResult, check

MEMO = 1024


def authentication_results(host: str, spf: SpfResult, dkim: list[DkimResult]) -> str:
    """The Authentication-Results field (RFC 8601): each method's result and what it was about."""
    prop = f"smtp.mailfrom={spf.domain}" if spf.identity == "mailfrom" else f"smtp.helo={spf.domain}"
    why = f" ({spf.mechanism} matched)" if spf.mechanism else ""
    clauses = [f"spf={spf.result}{why} {prop}"]
    clauses += [f"dkim={d.result}" + (f" ({d.reason})" if d.reason else "")
                + f" header.d={d.domain} header.s={d.selector} header.a={d.algorithm}" for d in dkim] \
        or ["dkim=none (no signature)"]
    return f"Authentication-Results: {host};\r\n\t" + ";\r\n\t".join(clauses)


def _domain(address: str | None) -> str:
    return (address or "").rpartition("@")[2].lower()


def sender_checks(host: str, address: str, resolver: Callable[[], LabResolver],
                  keys_for: Callable[[str], DomainKeys | None]) -> list[Check]:
    known: dict[tuple[str, str, str], SpfResult] = {}

    async def spf_result(f: Facts) -> SpfResult:
        key = (f.client_ip, f.helo, f.sender or "")
        found = known.get(key)
        if found is None:
            found = await check(resolver(), address, ip=f.client_ip, sender=f.sender or "", helo=f.helo,
                                receiver=host)
            if len(known) >= MEMO:
                del known[next(iter(known))]
            known[key] = found
        return found

    async def sender_auth(f: Facts) -> Verdict:
        if f.login is not None or f.sender is None:
            return ACCEPT
        spf = await spf_result(f)
        reason = f"spf={spf.result} {spf.identity}={spf.domain or '-'} client-ip={f.client_ip}" + \
                 (f" mechanism={spf.mechanism}" if spf.mechanism else "")
        if f.stage == "mail":
            return tag(reason=reason)                # said in the maillog at MAIL FROM; headers at the end
        dkim = await verify(resolver(), address, f.message()) if f.message is not None else []
        reason += "".join(f"; dkim={d.result} d={d.domain} s={d.selector}" + (f" ({d.reason})" if d.reason else "")
                          for d in dkim)
        return tag(f"Received-SPF: {spf.received_spf}", authentication_results(host, spf, dkim), reason=reason)

    async def dkim_sign(f: Facts) -> Verdict:
        keys = keys_for(_domain(f.sender)) if f.login is not None else None
        if keys is None or f.message is None:
            return ACCEPT
        try:
            fields = await sign(keys, f.message())
        except Unsignable as e:
            return tag(reason=f"not signed: {e}")     # delivered unsigned, as OpenDKIM does; the maillog says why
        return tag(*fields, reason=f"DKIM-Signature added: d={keys.domain} s="
                                   + ",".join(k.selector for k in keys.keys))

    return [Check("dkim_sign", frozenset({"data"}), dkim_sign),
            Check("sender_auth", frozenset({"mail", "data"}), sender_auth)]
