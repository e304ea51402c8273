"""Delivery status notifications: the "Undeliverable" mail (RFC 3464).

`build_dsn` writes a complete message: a multipart/report (RFC 6522) whose
parts are a human explanation in the words of Postfix, the machine-readable
message/delivery-status (RFC 3464 §2), and the original message's header
block as text/rfc822-headers, or the whole message as message/rfc822 when
the sender asked RET=FULL (RFC 3461 §4.3).  The sender's ENVID and each
recipient's ORCPT come back as Original-Envelope-Id and Original-Recipient
(RFC 3461 §4.2, §4.4); a non-ASCII address is written as RFC 6533 has it
(`utf-8;` address type, message/global-delivery-status).  `wants_notice`
is RFC 3461 §4.1's NOTIFY rule: which recipients a notice of an action is for.  `is_bounce` tells the null sender apart: a DSN
is sent from "<>" and is never bounced itself (RFC 5321 §4.5.5, RFC 3464 §2).

Invariants: the result uses CRLF line endings throughout; no header value
carries a raw CR or LF (control characters become spaces, long values are
folded at spaces, RFC 5322 §2.2.3); a non-ASCII subject is RFC 2047-encoded;
the MIME boundary occurs nowhere in the parts.  Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import formatdate
from typing import Sequence

CRLF = "\r\n"
FOLD_AT = 78   # RFC 5322 §2.1.1: lines should stay within 78 characters

_SUBJECTS = {   # RFC 3464 §2.3.3 actions
    "failed": "Undeliverable",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Delivered",
    "relayed": "Relayed",
    "expanded": "Expanded",
}
_STATUS = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_NOT_BCHAR = re.compile(r"[^0-9A-Za-z'()+_,./:=?-]")
_TYPED = re.compile(r"[A-Za-z][A-Za-z0-9-]*;")


@dataclass(frozen=True)
class DsnRecipient:
    address: str
    status: str            # RFC 3463 enhanced status, "5.1.1"
    diagnostic: str        # "smtp; 550 5.1.1 <bob@x>: Recipient address rejected"
    remote_mta: str = ""   # "mx1.luxsci.net", when a remote MTA gave the verdict
    orcpt: str = ""        # the ORCPT the sender gave ("rfc822;bob@luxsci.net"), RFC 3461 §4.2
    notify: tuple[str, ...] = ()   # the recipient's NOTIFY (RFC 3461 §4.1): () = not given


def wants_notice(notify: tuple[str, ...], action: str) -> bool:
    """Whether a recipient with this NOTIFY gets a notice of `action` (RFC 3461 §4.1): NEVER
    none; a list only what it names; none given: failures and delays (the MTA's default), never
    a success."""
    word = {"failed": "FAILURE", "delayed": "DELAY", "delivered": "SUCCESS", "relayed": "SUCCESS"}.get(action)
    if not notify:
        return word in ("FAILURE", "DELAY")
    return word in notify


def is_bounce(sender: str) -> bool:
    """The null reverse-path: the message is itself a notification."""
    return sender.strip() in ("", "<>")


def build_dsn(*, reporting_host: str, original_sender: str, original: bytes, queue_id: str,
              arrival: float, now: float, recipients: Sequence[DsnRecipient],
              action: str = "failed", ret: str = "", envid: str = "") -> bytes:
    """The complete DSN message for `original_sender`, as CRLF bytes."""
    if action not in _SUBJECTS:
        raise ValueError(f"unknown DSN action {action!r}")
    if is_bounce(original_sender):
        raise ValueError("a notification is never sent to the null sender")
    if not recipients:
        raise ValueError("a DSN needs at least one recipient")
    for rcpt in recipients:
        if not _STATUS.match(rcpt.status):
            raise ValueError(f"bad status code {rcpt.status!r}")

    headers = original_headers(original)
    subject = original_subject(headers)
    status = _status_fields(reporting_host, original_sender, queue_id, arrival, recipients, action, envid)
    utf8 = any(not r.address.isascii() or not r.orcpt.isascii() for r in recipients)
    parts = [
        _part(["Content-Description: Notification"], "text/plain",
              _explanation(reporting_host, action, recipients, now - arrival).encode("utf-8")),
        _part(["Content-Description: Delivery report"],
              "message/global-delivery-status" if utf8 else "message/delivery-status",   # RFC 6533 §6.2
              status.encode("utf-8")),
        _part(["Content-Description: Undelivered Message"], "message/rfc822", original) if ret == "FULL" else
        _part(["Content-Description: Undelivered Message Headers"], "text/rfc822-headers", headers),
    ]
    # RFC 2046 §5.1.1: at most 70 characters from a safe set
    boundary = _NOT_BCHAR.sub("", f"{queue_id or 'DSN'}.{int(now)}/{reporting_host}")[:60]
    while any(boundary.encode() in part for part in parts):
        boundary += "." + secrets.token_hex(4)
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part for part in parts)
    body += b"--" + boundary.encode() + b"--\r\n"

    top = [
        _field("From", f"MAILER-DAEMON@{reporting_host} (Mail Delivery System)"),
        _field("To", original_sender),
        _subject(f"{_SUBJECTS[action]}: {subject or '(no subject)'}"),
        _field("Date", formatdate(now, localtime=True)),
        _field("Message-ID", f"<{time.strftime('%Y%m%d%H%M%S', time.gmtime(now))}."
                             f"{secrets.token_hex(6)}@{reporting_host}>"),
        _field("Auto-Submitted", "auto-replied"),   # RFC 3834 §5
        _field("MIME-Version", "1.0"),
        _field("Content-Type", "multipart/report; report-type=delivery-status;"
                               f' boundary="{boundary}"'),
    ]
    if not body.isascii():
        top.append(_field("Content-Transfer-Encoding", "8bit"))
    head = "".join(top).encode("utf-8")
    preamble = b"This is a MIME-encapsulated message.\r\n\r\n"
    return head + b"\r\n" + preamble + body


def original_headers(original: bytes) -> bytes:
    """The header block of a message, CRLF line endings, without the blank line."""
    if original.startswith((b"\r\n", b"\n")):
        return b""
    match = re.search(rb"\n\r?\n", original)
    block = original[:match.start()] if match else original
    lines = [line.rstrip(b"\r") for line in block.split(b"\n")]
    return b"".join(line + b"\r\n" for line in lines if line)


def original_subject(headers: bytes) -> str:
    """The decoded Subject of a header block (RFC 2047 words decoded), or ""."""
    parsed = HeaderParser(policy=compat32).parsestr(headers.decode("utf-8", errors="replace"))
    raw = parsed.get("Subject")
    if raw is None:
        return ""
    raw = re.sub(r"\r?\n", "", str(raw))   # unfold, RFC 5322 §2.2.3
    try:
        value = str(make_header(decode_header(raw)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        value = raw
    return _clean(value)


def _explanation(host: str, action: str, recipients: Sequence[DsnRecipient],
                 waited: float) -> str:
    if action == "failed":
        intro = ["I'm sorry to have to inform you that your message could not",
                 "be delivered to one or more recipients. Its headers are attached below.",
                 "",
                 "For further assistance, please send mail to postmaster.",
                 "",
                 "If you do so, please include this problem report."]
    elif action == "delayed":
        intro = ["#" * 68,
                 "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
                 "#" * 68,
                 "",
                 f"Your message could not be delivered for {_duration(waited)}.",
                 "It will be retried until it is too old, then returned to you."]
    else:
        intro = ["Your message was successfully delivered to the destination(s)",
                 "listed below. If the message was delivered to a mailbox you will",
                 "receive no further notifications. Otherwise you may still receive",
                 "notifications of mail delivery errors from other systems."]
    lines = [f"This is the mail system at host {_clean(host)}.", "", *intro, "",
             "                   The mail system", ""]
    for rcpt in recipients:
        text = _clean(rcpt.diagnostic)
        typed = _TYPED.match(text)
        text = (text[typed.end():].strip() if typed else text) or rcpt.status
        said = f"host {_clean(rcpt.remote_mta)} said: {text}" if rcpt.remote_mta else text
        lines.append(f"<{_clean(rcpt.address)}>: {said}")
    return CRLF.join(lines) + CRLF


def _typed(address: str) -> str:
    """An address with its type: rfc822, or utf-8 for a non-ASCII one (RFC 6533 §3)."""
    return f"{'rfc822' if address.isascii() else 'utf-8'}; {address}"


def _status_fields(host: str, sender: str, queue_id: str, arrival: float,
                   recipients: Sequence[DsnRecipient], action: str, envid: str = "") -> str:
    """The message/delivery-status body: RFC 3464 §2.2 and §2.3 field groups."""
    groups = ["".join([
        *([_field("Original-Envelope-Id", envid)] if envid else []),       # RFC 3464 §2.2.1
        _field("Reporting-MTA", f"dns; {host}"),
        _field("X-Maillab-Queue-ID", queue_id),
        _field("X-Maillab-Sender", _typed(sender)),
        _field("Arrival-Date", formatdate(arrival, localtime=True)),
    ])]
    for rcpt in recipients:
        kind, semi, given = rcpt.orcpt.partition(";")
        fields = [
            _field("Final-Recipient", _typed(rcpt.address)),
            # RFC 3464 §2.3.1: the ORCPT as given; without one, the address the message came for
            _field("Original-Recipient", f"{kind}; {given}" if semi else _typed(rcpt.address)),
            _field("Action", action),
            _field("Status", rcpt.status),
        ]
        if rcpt.remote_mta:
            mta = rcpt.remote_mta if _TYPED.match(rcpt.remote_mta) else f"dns; {rcpt.remote_mta}"
            fields.append(_field("Remote-MTA", mta))
        if rcpt.diagnostic.strip():
            code = rcpt.diagnostic.strip()
            if not _TYPED.match(code):
                code = f"X-Maillab; {code}"
            fields.append(_field("Diagnostic-Code", code))
        groups.append("".join(fields))
    return CRLF.join(groups)


def _part(headers: list[str], content_type: str, content: bytes) -> bytes:
    ascii_only = content.isascii()
    if content_type.startswith("text/"):
        content_type += "; charset=" + ("us-ascii" if ascii_only else "utf-8")
    lines = [*headers, f"Content-Type: {content_type}"]
    if not ascii_only:
        lines.append("Content-Transfer-Encoding: 8bit")
    return (CRLF.join(lines) + CRLF + CRLF).encode("utf-8") + content + b"\r\n"


def _clean(value: str) -> str:
    """One line: every run of control characters (CR and LF included) becomes a space."""
    return _CONTROL.sub(" ", value).strip()


def _field(name: str, value: str) -> str:
    """ "Name: value" CRLF, folded at spaces to about FOLD_AT characters."""
    words = f"{name}: {_clean(value)}".split(" ")
    lines, current = [], words[0]
    for word in words[1:]:
        if len(current) + 1 + len(word) > FOLD_AT and current.strip():
            lines.append(current)
            current = " " + word
        else:
            current += " " + word
    lines.append(current)
    return CRLF.join(lines) + CRLF


def _subject(value: str) -> str:
    value = _clean(value)
    if value.isascii():
        return _field("Subject", value)
    encoded = Header(value, "utf-8", header_name="Subject").encode(linesep=CRLF)
    return f"Subject: {encoded}{CRLF}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            amount = seconds / size
            return f"{amount:.1f} {unit}s" if round(amount, 1) != 1 else f"1 {unit}"
    return f"{int(seconds)} seconds"
