"""Where a recipient goes next from one host, and what happened when it went.

`deliver_local` hands recipients of the host's own domains to the MDA (an
unknown mailbox is a permanent failure, 5.1.1, bounced by the caller);
`relay` looks up the domain's MX in the lab DNS, best preference first (a
backup MX only tries hosts more preferred than itself), resolves each MX to
its A records, and makes an SMTP hop from the host's own address, trying the
next MX on a temporary failure.  Both return one `Outcome` per recipient:
sent, bounce or defer — the queue manager decides what to do with them.
Each try at an MX address goes into the message's history (`Entry.history`)
and on the bus (`MxTried`), the failed ones before the one that took it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .context import LabContext
from .dns.client import LookupFailed
from .events import MxTried, Notice
from .queue.records import Attempt, Entry
from .smtp.client import send_hop
from .smtp.replies import Reply
from .world import Host

_out_sessions = itertools.count(1)


@dataclass(slots=True)
class Outcome:
    recipient: str
    kind: str          # "sent", "bounce" or "defer"
    relay: str         # "local", "none" or "name[ip]:port"
    dsn: str           # enhanced status code
    detail: str
    remote_mta: str = ""

    @property
    def diagnostic(self) -> str:
        """The Diagnostic-Code of a DSN (RFC 3464 §2.3.6)."""
        if self.relay == "local":
            return f"x-unix; {self.detail}"
        if " said: " in self.detail:
            return f"smtp; {self.detail.split(' said: ', 1)[1]}"
        return f"X-Maillab; {self.detail}"


async def deliver_local(ctx: LabContext, entry: Entry, message: bytes, rcpts: list[str]) -> list[Outcome]:
    """Store one copy per recipient.

    The message file is written and flushed by the group-commit thread
    (`ctx.syncer`); a mailbox not yet open is opened in a pool thread first
    (it may need a scan).  The rename, UID and index then happen in a pool
    thread, under the user's lock that IMAP and POP3 sessions take too (they
    may hold it long).
    """
    outcomes = []
    for rcpt in rcpts:
        account = ctx.mda.account_for(rcpt)
        if account is None:
            outcomes.append(Outcome(rcpt, "bounce", "local", "5.1.1",
                                    f"unknown user: \"{rcpt.rpartition('@')[0]}\""))
            continue
        try:
            result = await ctx.syncer.run(ctx.mda.deliver(account, rcpt, entry.sender, message, entry.id),
                                          blocking_first=not ctx.store.is_open(account.address),
                                          blocking_rest=True)
        except OSError as e:
            outcomes.append(Outcome(rcpt, "defer", "local", "4.3.0", f"cannot write to maildir: {e.strerror}"))
            continue
        detail = result.detail if account.address == rcpt.lower() else f"{result.detail} of {account.address}"
        outcomes.append(Outcome(rcpt, "sent", "local", result.status, detail))
    return outcomes


def _tried(ctx: LabContext, host: Host, entry: Entry, mx: str, address: str, result: str,
           reason: str) -> None:
    now = ctx.clock.now()
    entry.add_attempt(Attempt(now, mx, address, result, reason))
    ctx.bus.publish(MxTried(now, host.name, entry.id, mx, address, result, reason))


def _hop_result(replies: list[Reply]) -> tuple[str, str]:
    """(result, reason) of a hop that talked SMTP, from its replies to our recipients."""
    if not replies:
        return "deferred", "no reply to any recipient"
    taken = next((r for r in replies if r.is_positive), None)
    if taken is not None:
        return "delivered", str(taken)
    refused = [r for r in replies if not r.is_permanent]
    return ("deferred", str(refused[0])) if refused else ("bounced", str(replies[0]))


async def relay(ctx: LabContext, host: Host, entry: Entry, message: bytes, domain: str,
                rcpts: list[str]) -> list[Outcome]:
    resolver, me = ctx.resolver, host.address
    try:
        mx = await resolver.mx(domain, source=me)
    except LookupFailed as e:
        kind, dsn = ("defer", "4.4.3") if e.temporary else ("bounce", "5.1.2")
        return [Outcome(r, kind, "none", dsn, f"Host or domain name not found. "
                                              f"Name service error for name={domain} type=MX: {e.reason}")
                for r in rcpts]
    own = next((pref for pref, name in mx if name == host.name), None)
    if own is not None:
        mx = [(pref, name) for pref, name in mx if pref < own]
        if not mx:
            return [Outcome(r, "bounce", "none", "5.4.6", f"mail for {domain} loops back to myself")
                    for r in rcpts]
    last_error, last_dsn = "no MX host answered", "4.4.1"
    tries: list[str] = []        # each failed try's reason, so none is lost to the last one
    remaining = list(rcpts)
    outcomes: list[Outcome] = []
    port = ctx.ports.smtp
    for _pref, name in mx:
        try:
            addresses = await resolver.a(name, source=me)
        except LookupFailed as e:
            last_error = f"Host or domain name not found. Name service error for name={name} type=A: {e.reason}"
            last_dsn = "4.4.3"
            tries.append(last_error)
            _tried(ctx, host, entry, name, "", "deferred", last_error)
            continue
        for ip in addresses:
            relay_name = f"{name}[{ip}]:{port}"
            hop = await send_hop(helo=host.name, source_ip=me, dest_ip=ip, dest_port=port,
                                 sender=entry.sender, recipients=remaining, message=message, bus=ctx.bus,
                                 clock=ctx.clock, host=host.name, timeout=ctx.smtp_timeout,
                                 session=f"{host.name}/smtp-out/{next(_out_sessions)}",
                                 eightbit=not message.isascii(),
                                 smtputf8=not all(a.isascii() for a in (entry.sender, *remaining)))
            replies = [x for x in (hop.rcpt_replies.get(r) for r in remaining) if x is not None]
            if hop.error:
                result = "refused" if not hop.connected and "refused" in hop.error.lower() else "deferred"
                _tried(ctx, host, entry, name, f"{ip}:{port}", result,
                       hop.error.partition(": ")[2] if not hop.connected else hop.error)
            else:
                _tried(ctx, host, entry, name, f"{ip}:{port}", *_hop_result(replies))
            still: list[str] = []
            for r in remaining:
                reply = hop.rcpt_replies.get(r)
                if reply is None:
                    still.append(r)
                elif reply.is_positive:
                    outcomes.append(Outcome(r, "sent", relay_name, reply.enhanced or "2.0.0", str(reply), name))
                elif reply.is_permanent:
                    outcomes.append(Outcome(r, "bounce", relay_name, reply.enhanced or "5.0.0",
                                            f"host {relay_name} said: {reply}", name))
                elif hop.rcpt_stage.get(r) in ("CONNECT", "EHLO", "HELO"):
                    # the host would not talk to us at all: try the next MX (RFC 5321 §5.1)
                    last_error, last_dsn = f"host {relay_name} said: {reply}", reply.enhanced or "4.0.0"
                    still.append(r)
                else:
                    outcomes.append(Outcome(r, "defer", relay_name, reply.enhanced or "4.0.0",
                                            f"host {relay_name} said: {reply}", name))
            if hop.error:
                last_error, last_dsn = hop.error, "4.4.1" if not hop.connected else "4.4.2"
                # Postfix's words for a failed try, e.g. "connect to smtp1.syr.edu[127.0.0.1]:25: Connection refused"
                text = (f"connect to {relay_name}: {hop.error.partition(': ')[2]}" if not hop.connected
                        else f"{relay_name}: {hop.error}")
                ctx.bus.publish(Notice(ctx.clock.now(), host.name, "smtp", text, entry.id))
                tries.append(text)
            elif still and last_error.startswith(f"host {relay_name} said:"):
                tries.append(last_error)
            remaining = still
            if not remaining:
                return outcomes
    detail = "; ".join(tries) or last_error
    return outcomes + [Outcome(r, "defer", "none", last_dsn, detail) for r in remaining]
