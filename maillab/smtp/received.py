"""The Received trace header each hop stamps (RFC 5321 §4.4, RFC 3848 protocol names).

    Received: from northpole.org (mail.northpole.org [127.0.0.3])
            by smtp1.syr.edu (maillab) with ESMTP id 4F3A2B1C9D
            for <mafudge@syr.edu>; Mon, 23 Nov 2026 10:00:00 +0000

`for` appears only with a single recipient, as in Postfix, so one copy of a
message sent to many does not reveal the others; an authenticated sender's
login is shown as Postfix shows it (`(Authenticated sender: santa@northpole.org)`,
smtpd_sasl_authenticated_header), and a TLS session's protocol and cipher before it, as
Postfix's smtpd_tls_received_header writes them (`(using TLSv1.3 with cipher
TLS_AES_256_GCM_SHA384 (256/256 bits))`; `tls` is `net.tls.TlsInfo.summary`).  `missing_headers` gives the `Date:` and
`Message-ID:` a hand-typed message lacks, as Postfix's cleanup adds them.
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate

_last_date: tuple[int, str] = (-1, "")


def _date(when: float) -> str:
    """RFC 5322 date of `when` in local time, formatted once per second."""
    global _last_date
    second = int(when)
    if _last_date[0] != second:
        _last_date = (second, formatdate(second, localtime=True))
    return _last_date[1]


def protocol_name(*, esmtp: bool, tls: bool = False, auth: bool = False, utf8: bool = False) -> str:
    """RFC 3848 / RFC 6531 §4.3 'with' keyword: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP..."""
    if not esmtp:
        return "SMTP"
    base = "UTF8SMTP" if utf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if auth else "")


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() and c not in "()" else "?" for c in text)[:255]


def received_header(*, helo: str, client_name: str | None, client_ip: str, by: str,
                    protocol: str, queue_id: str, recipients: list[str], when: float,
                    auth: str = "", tls: str = "") -> bytes:
    name = client_name or "unknown"
    lines = [f"Received: from {_clean(helo) or 'unknown'} ({name} [{client_ip}])"]
    if tls:
        lines.append(f"\t(using {tls})")
    if auth:
        lines.append(f"\t(Authenticated sender: {_clean(auth)})")
    lines.append(f"\tby {by} (maillab) with {protocol} id {queue_id}")
    date = _date(when)
    if len(recipients) == 1:
        lines.append(f"\tfor <{recipients[0]}>; {date}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


def local_received_header(*, by: str, queue_id: str, when: float) -> bytes:
    """The trace header of a message made on the host itself (a bounce, a notice)."""
    return (f"Received: by {by} (maillab) id {queue_id};\r\n"
            f"\t{_date(when)}\r\n").encode()


_DATE = re.compile(rb"^date:", re.I | re.M)
_MESSAGE_ID = re.compile(rb"^message-id:", re.I | re.M)


def missing_headers(head: bytes, *, by: str, queue_id: str, when: float) -> bytes:
    """`Date:` and `Message-ID: <stamp.queueid@host>` for a message whose header block (the
    start of `head`) has none, as Postfix's cleanup adds them (RFC 5322 §3.6: both expected)."""
    end = head.find(b"\r\n\r\n")
    block = head if end < 0 else head[:end + 2]
    out = b""
    if not _DATE.search(block):
        out += f"Date: {_date(when)}\r\n".encode()
    if not _MESSAGE_ID.search(block):
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(when))
        out += f"Message-ID: <{stamp}.{queue_id}@{by}>\r\n".encode()
    return out
