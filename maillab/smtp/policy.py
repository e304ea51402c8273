"""What one MTA host accepts: address checks and the relay rules (sans-IO).

`check_address` rejects what RFC 5321 does not allow in a path (NUL and other
control characters, invalid UTF-8, over-long parts).  `check_rcpt` decides a
RCPT TO at a host:

- a domain whose mailboxes live here: accepted (route "local"); with the
  world's `reject_unknown_recipients`, an unknown mailbox is refused at once
  (550 5.1.1) instead of being bounced later by the MDA;
- a domain that lists this host as a backup MX: accepted (route "backup"),
  to be passed on to a more preferred MX;
- any other domain: only for an authenticated session (route "relay"),
  otherwise 554 5.7.1 relay denied.  Never an open relay.

`standard_checks` makes these, with greylisting, chaos, `sender_login_match`
and the in-flow delay, the first checks of a host's `Checkpoints`, each given
only what it needs (`HostPolicy`: the world, the host's name and a few of its
functions), not the whole lab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Awaitable, Callable

from ..lab.world import World
from .checkpoints import ACCEPT, Check, Facts, Verdict, reject

_DOMAIN = re.compile(r"^(?=.{1,255}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\[[0-9.:a-fA-F]+\]$")


@dataclass(frozen=True, slots=True)
class RcptVerdict:
    accept: bool
    reply: str
    route: str = ""        # "local", "backup" or "relay" when accepted


def check_address(address: str, *, allow_empty: bool = False) -> str | None:
    """An error reply if `address` may not appear in MAIL FROM / RCPT TO, else None."""
    if address == "":
        return None if allow_empty else "501 5.1.3 Bad address syntax: empty address"
    if any(ord(c) < 32 or ord(c) == 127 for c in address):
        return "501 5.1.3 Bad address syntax: control character in address"
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in address):
        return "501 5.6.7 Bad address syntax: address is not valid UTF-8"
    if len(address.encode("utf-8", "surrogateescape")) > 254:
        return "501 5.1.3 Bad address syntax: path too long (RFC 5321 section 4.5.3.1.3)"
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "501 5.1.3 Bad address syntax: need user@domain"
    if len(local.encode()) > 64:
        return "501 5.1.3 Bad address syntax: local part over 64 octets (RFC 5321 section 4.5.3.1.1)"
    try:
        ascii_domain = domain if domain.isascii() else domain.encode("idna").decode()
    except UnicodeError:
        ascii_domain = ""
    if not _DOMAIN.match(ascii_domain):
        return f"501 5.1.2 Bad address syntax: bad domain name {domain!r}"
    return None


def check_rcpt(world: World, host: str, address: str, *, authenticated: bool,
               mailbox_exists: Callable[[str], bool]) -> RcptVerdict:
    domain = address.rpartition("@")[2].lower()
    known = world.domains.get(domain)
    if known is not None:
        if known.mailbox_host == host:
            if world.reject_unknown_recipients and not mailbox_exists(address):
                return RcptVerdict(False, f"550 5.1.1 <{address}>: Recipient address rejected: "
                                          "User unknown in local recipient table")
            return RcptVerdict(True, "250 2.1.5 Ok", "local")
        if world.mx_preference(domain, host) is not None:
            return RcptVerdict(True, "250 2.1.5 Ok", "backup")
    if authenticated:
        return RcptVerdict(True, "250 2.1.5 Ok", "relay")
    return RcptVerdict(False, f"554 5.7.1 <{address}>: Relay access denied")


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """What the standard checks of one host need, and no more."""
    host: str
    world: Callable[[], World]                     # the world now (tests and the admin change it)
    chaos: Callable[[str], str | None]             # stage "MAIL"/"RCPT"/"DATA" -> a simulated failure
    greylisted: Callable[[str, str, str], bool]    # (client ip, sender, rcpt) -> come back later
    mailbox_exists: Callable[[str], bool]
    in_flow: Callable[[], Awaitable[None]]         # the queue's in-flow delay


def standard_checks(p: HostPolicy) -> list[Check]:
    """Today's policy as checks, in the order the lab has always applied it."""

    def address(f: Facts) -> Verdict:
        error = check_address(f.sender or "", allow_empty=True) if f.stage == "mail" else check_address(f.recipient)
        return reject(error) if error else ACCEPT

    def chaos(f: Facts) -> Verdict:
        strike = p.chaos(f.stage.upper())
        return reject(strike, "simulated failure") if strike else ACCEPT

    def sender_login_match(f: Facts) -> Verdict:
        # Postfix's reject_sender_login_mismatch; off by default, so the spoofing lesson works
        if p.world().sender_login_match and f.login is not None and (f.sender or "").lower() != f.login.lower():
            return reject(f"553 5.7.1 <{f.sender}>: Sender address rejected: not owned by user {f.login}")
        return ACCEPT

    def greylist(f: Facts) -> Verdict:
        if p.greylisted(f.client_ip, f.sender or "", f.recipient):
            return reject(f"450 4.2.0 <{f.recipient}>: Recipient address rejected: Greylisted, try again later")
        return ACCEPT

    def relay(f: Facts) -> Verdict:
        verdict = check_rcpt(p.world(), p.host, f.recipient, authenticated=f.login is not None,
                             mailbox_exists=p.mailbox_exists)
        return ACCEPT if verdict.accept else reject(verdict.reply)

    async def in_flow(f: Facts) -> Verdict:
        await p.in_flow()                           # a new message: Postfix's in_flow_delay
        return ACCEPT

    return [Check("address", frozenset({"mail", "rcpt"}), address),
            Check("chaos", frozenset({"mail", "rcpt", "data"}), chaos),
            Check("sender_login_match", frozenset({"mail"}), sender_login_match),
            Check("greylist", frozenset({"rcpt"}), greylist),
            Check("relay", frozenset({"rcpt"}), relay),
            Check("in_flow", frozenset({"mail"}), in_flow)]
