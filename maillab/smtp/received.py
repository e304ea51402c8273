"""The Received trace header each hop stamps (RFC 5321 §4.4, RFC 3848 protocol names).

    Received: from northpole.org (mail.northpole.org [127.0.0.3])
            by smtp1.syr.edu (maillab) with ESMTP id 4F3A2B1C9D
            for <mafudge@syr.edu>; Mon, 23 Nov 2026 10:00:00 +0000

`for` appears only with a single recipient, as in Postfix, so one copy of a
message sent to many does not reveal the others.
"""

from __future__ import annotations

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


def received_header(*, helo: str, client_name: str | None, client_ip: str, by: str,
                    protocol: str, queue_id: str, recipients: list[str], when: float) -> bytes:
    helo = "".join(c if c.isprintable() and c not in "()" else "?" for c in helo)[:255] or "unknown"
    name = client_name or "unknown"
    lines = [f"Received: from {helo} ({name} [{client_ip}])",
             f"\tby {by} (maillab) with {protocol} id {queue_id}"]
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
