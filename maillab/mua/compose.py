"""Composing messages as a mail client writes them: a `Draft` in, RFC 5322 / MIME octets out.

`build(draft)` makes the wire form (CRLF line endings): From, To, Cc,
Subject, Date, Message-ID, MIME-Version, In-Reply-To and References when
set, the extra fields asked for — and never a Bcc field: Bcc recipients are
only in the envelope (`envelope(draft)`).  Non-ASCII header text becomes RFC
2047 encoded-words and a non-ASCII attachment name RFC 2231 parameters (the
email package's SMTP policy does both); the text is UTF-8, optionally
format=flowed (RFC 3676); attachments are base64 parts of a multipart/mixed.
A CR or LF in any header value or address is refused (header injection).

`reply` and `forward` make the Draft of an answer to a message: the
addresses, "Re:"/"Fwd:", In-Reply-To and References (RFC 5322 §3.6.4), the
quoted text.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr

from .reading import attachment_parts, text

FLOW_WIDTH = 72                  # RFC 3676 §4.2: lines of at most 78, 72 recommended
_POLICY = policy.SMTP.clone(max_line_length=78)
_RE = re.compile(r"^\s*(re|aw|sv)\s*:", re.I)
_FWD = re.compile(r"^\s*(fwd?|wg)\s*:", re.I)


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    data: bytes
    content_type: str = ""          # "" = guessed from the filename


@dataclass(frozen=True)
class Draft:
    sender: str                     # "Santa Claus <santa@northpole.org>" or a bare address
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = ""
    body: str = ""
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    flowed: bool = False


def _clean(value: str, what: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"{what} {value!r}: a line break in a header field (header injection) is refused")
    return value


def _address(text_: str, what: str) -> Address:
    name, addr = parseaddr(_clean(text_, what))
    if "@" not in addr:
        raise ValueError(f"{what} {text_!r}: not a mail address (like santa@northpole.org)")
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def envelope(draft: Draft) -> tuple[str, tuple[str, ...]]:
    """MAIL FROM and the RCPT TOs: every To, Cc and Bcc address once, in order."""
    seen: dict[str, str] = {}
    for value in (*draft.to, *draft.cc, *draft.bcc):
        addr = _address(value, "recipient").addr_spec
        seen.setdefault(addr.lower(), addr)
    return _address(draft.sender, "sender").addr_spec, tuple(seen.values())


def flow(body: str, width: int = FLOW_WIDTH) -> str:
    """RFC 3676 format=flowed: long lines broken after a space (kept: a soft break), lines that
    begin with a space, ">" or "From " space-stuffed, trailing spaces of hard breaks removed."""
    out = []
    for line in body.split("\n"):
        line = line.rstrip(" ")
        if line.startswith((" ", ">", "From ")):
            line = " " + line
        while len(line) > width and " " in line[1:width]:
            cut = line.rfind(" ", 1, width) + 1
            out.append(line[:cut])
            line = line[cut:]
            if line.startswith((" ", ">", "From ")):
                line = " " + line
        out.append(line)
    return "\n".join(out)


def build(draft: Draft, *, date: datetime | None = None, message_id: str | None = None) -> bytes:
    """The message's octets, CRLF line endings; see the module docstring."""
    sender = _address(draft.sender, "sender")
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    if draft.to:
        msg["To"] = [_address(a, "To") for a in draft.to]
    if draft.cc:
        msg["Cc"] = [_address(a, "Cc") for a in draft.cc]
    msg["Subject"] = _clean(draft.subject, "Subject")
    msg["Date"] = format_datetime(date or datetime.now().astimezone())
    msg["Message-ID"] = _clean(message_id, "Message-ID") if message_id else make_msgid(domain=sender.domain)
    if draft.in_reply_to:
        msg["In-Reply-To"] = _clean(draft.in_reply_to, "In-Reply-To")
    if draft.references:
        msg["References"] = " ".join(_clean(r, "References") for r in draft.references)
    for name, value in draft.headers:
        if not re.fullmatch(r"[!-9;-~]+", name):
            raise ValueError(f"header name {name!r}: printable ASCII without a colon or space (RFC 5322 §2.2)")
        if name.lower() == "bcc":
            raise ValueError("a Bcc header field would show the hidden recipients: give them as bcc")
        msg[name] = _clean(value, name)
    body = draft.body if draft.body.endswith("\n") or not draft.body else draft.body + "\n"
    if draft.flowed:
        msg.set_content(flow(body), charset="utf-8", params={"format": "flowed"})
    else:
        msg.set_content(body, charset="utf-8")
    for a in draft.attachments:
        kind = a.content_type or mimetypes.guess_type(a.filename)[0] or "application/octet-stream"
        maintype, _, subtype = kind.partition("/")
        msg.add_attachment(a.data, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=_clean(a.filename, "attachment name"), cte="base64")
    for part in msg.iter_parts():
        del part["MIME-Version"]         # the email package puts one in each part: it belongs at the top
    return msg.as_bytes(policy=_POLICY)


def _parse(original: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(original)  # type: ignore[return-value]


def _bare(value: str) -> str:
    return parseaddr(value)[1].lower()


def _without(addresses: list[str], drop: set[str]) -> tuple[str, ...]:
    out: dict[str, str] = {}
    for a in addresses:
        bare = _bare(a)
        if bare and bare not in drop:
            out.setdefault(bare, a)
    return tuple(out.values())


def _formatted(pairs: list[tuple[str, str]]) -> list[str]:
    return [str(Address(display_name=name, addr_spec=addr)) if name else addr for name, addr in pairs if addr]


def reply(original: bytes, me: str, *, to_all: bool = False) -> Draft:
    """The Draft of a reply (to the sender, or with `to_all` to everyone else too) from `me`."""
    msg = _parse(original)
    subject = str(msg["Subject"] or "")
    to = _formatted(getaddresses([str(v) for v in msg.get_all("Reply-To") or msg.get_all("From") or []]))
    cc: tuple[str, ...] = ()
    if to_all:
        others = _formatted(getaddresses([str(v) for v in (msg.get_all("To") or []) + (msg.get_all("Cc") or [])]))
        cc = _without(others, {_bare(me)} | {_bare(a) for a in to})
    message_id = str(msg["Message-ID"] or "").strip()
    references = tuple(str(msg["References"] or "").split()) + ((message_id,) if message_id else ())
    who = msg["From"].addresses[0] if msg["From"] is not None and msg["From"].addresses else None
    name = (who.display_name or who.addr_spec) if who else "someone"
    quoted = "\n".join(f"> {line}" if line else ">" for line in text(original).rstrip("\n").split("\n"))
    return Draft(sender=me, to=tuple(to), cc=cc, subject=subject if _RE.match(subject) else f"Re: {subject}",
                 body=f"\n\nOn {msg['Date'] or 'an unknown date'}, {name} wrote:\n{quoted}\n",
                 in_reply_to=message_id, references=references)


def forward(original: bytes, me: str) -> Draft:
    """The Draft of a forward of `original` from `me`, its attachments carried along."""
    msg = _parse(original)
    subject = str(msg["Subject"] or "")
    lines = ["", "", "---------- Forwarded message ----------"]
    for name in ("From", "Date", "Subject", "To", "Cc"):
        if msg[name] is not None:
            lines.append(f"{name}: {msg[name]}")
    lines += ["", text(original)]
    return Draft(sender=me, subject=subject if _FWD.match(subject) else f"Fwd: {subject}",
                 body="\n".join(lines),
                 attachments=tuple(Attachment(name, data, kind) for name, data, kind in attachment_parts(original)))
