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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..world import World

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
