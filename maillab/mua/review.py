"""The review before sending: envelope beside header, the dialogue to come, and where the mail goes.

`review(draft, message, ...)` lays out what the course teaches about a message
about to leave: the SMTP envelope (MAIL FROM, one RCPT TO per recipient —
Bcc recipients among them) next to the header block the recipients will
read (From/To/Cc — no Bcc); the dialogue the client is about to have with
the submission server, command by command; and, for each recipient domain,
the MX the sender's MTA will hand the message to, by the DNS answers it will
get (`route`, asked of the lab DNS as the MTA will ask it).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Protocol, Sequence

from ..dns.client import LookupFailed
from .compose import Draft, envelope


class Resolver(Protocol):
    async def mx(self, domain: str, source: str | None = None) -> list[tuple[int, str]]: ...
    async def a(self, name: str, source: str | None = None) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Route:
    """Where the sender's MTA will take mail for one domain, and the DNS answers that say so."""
    domain: str
    recipients: tuple[str, ...]
    answers: tuple[str, ...]        # "syr.edu. MX 10 smtp1.syr.edu.", "smtp1.syr.edu. A 127.0.0.1"
    target: str                     # "smtp1.syr.edu [127.0.0.1]", or why there is none


@dataclass(frozen=True, slots=True)
class Review:
    mail_from: str
    rcpt_to: tuple[str, ...]
    header: tuple[str, ...]          # "From: ...", "To: ...", ... as the recipients will read them
    bcc: tuple[str, ...]             # in the envelope, not in the header
    dialogue: tuple[str, ...]        # the commands the client will send, in order
    size: int


SHOWN_FIELDS = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To")


def review(draft: Draft, message: bytes, *, server: str, tls: str, login: str | None) -> Review:
    """The review of `message` (built from `draft`) about to go to `server`."""
    sender, rcpts = envelope(draft)
    fields = BytesHeaderParser(policy=default).parsebytes(message)
    header = tuple(f"{name}: {fields[name]}" for name in SHOWN_FIELDS if fields[name] is not None)
    shown = {a.lower() for name in ("To", "Cc") for a in _addresses(fields, name)}
    bcc = tuple(r for r in rcpts if r.lower() not in shown)
    dialogue = ["(connect to " + server + (", TLS from the first octet" if tls == "tls" else "") + ")",
                "EHLO …"]
    if tls in ("starttls", "may"):
        dialogue += ["STARTTLS" + (" (if offered)" if tls == "may" else ""), "EHLO … (again, under TLS)"]
    if login:
        dialogue.append(f"AUTH PLAIN … (as {login})")
    dialogue += [f"MAIL FROM:<{sender}> SIZE={len(message)}", *(f"RCPT TO:<{r}>" for r in rcpts),
                 "DATA", f"(the message: {len(message)} octets, then a line with only \".\")", "QUIT"]
    return Review(sender, rcpts, header, bcc, tuple(dialogue), len(message))


def _addresses(fields: object, name: str) -> list[str]:
    value = fields[name]          # type: ignore[index]
    return [a.addr_spec for a in value.addresses] if value is not None else []


async def route(resolver: Resolver, recipients: Sequence[str], source: str | None = None) -> list[Route]:
    """For each recipient domain, the MX the sender's MTA will try first and the answers that say so."""
    by_domain: dict[str, list[str]] = {}
    for rcpt in recipients:
        by_domain.setdefault(rcpt.rpartition("@")[2].lower(), []).append(rcpt)
    routes = []
    for domain, rcpts in by_domain.items():
        answers: list[str] = []
        try:
            mx = sorted(await resolver.mx(domain, source))
        except (LookupFailed, OSError, TimeoutError) as e:      # said, not raised
            routes.append(Route(domain, tuple(rcpts), (f"{domain}. MX ? ({e})",), "no route: the MX look-up failed"))
            continue
        answers += [f"{domain}. MX {pref} {host}." for pref, host in mx] or [f"{domain}. MX (none: the A record)"]
        first = mx[0][1] if mx else domain
        try:
            addresses = await resolver.a(first, source)
        except (LookupFailed, OSError, TimeoutError) as e:
            routes.append(Route(domain, tuple(rcpts), (*answers, f"{first}. A ? ({e})"), f"{first}: no address"))
            continue
        answers += [f"{first}. A {address}" for address in addresses]
        routes.append(Route(domain, tuple(rcpts), tuple(answers),
                            f"{first} [{addresses[0]}]" if addresses else f"{first}: no address"))
    return routes
