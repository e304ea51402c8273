"""The DSN parameters of MAIL FROM and RCPT TO (RFC 3461 §4), parsed and checked.

    MAIL FROM:<a@b> RET=HDRS ENVID=QQ314159       RET: FULL or HDRS (§4.3); ENVID: xtext (§4.4)
    RCPT TO:<c@d> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;c@d   NOTIFY: NEVER or a list (§4.1);
                                                          ORCPT: addr-type ";" xtext (§4.2)

Values are kept decoded (xtext "+2B" is "+", §4); a bad one is a `PathError`
with the 501 reply.  Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .paths import PathError

MAX_ENVID = 100            # RFC 3461 §4.4
MAX_ORCPT = 500            # RFC 3461 §4.2
NOTIFY_WORDS = ("SUCCESS", "FAILURE", "DELAY")

_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


@dataclass(frozen=True, slots=True)
class MailDsn:
    ret: str = ""          # "FULL", "HDRS" or "" (not asked)
    envid: str = ""


@dataclass(frozen=True, slots=True)
class RcptDsn:
    notify: tuple[str, ...] = ()     # () not asked, ("NEVER",) or some of NOTIFY_WORDS
    orcpt: str = ""                  # "rfc822;bob@example.org" (decoded), "" not given


def _xtext(value: str, name: str) -> str:
    if not _XTEXT.fullmatch(value):
        raise PathError(f"501 5.5.4 Bad {name} parameter: not xtext (RFC 3461 §4)")
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def mail_dsn(params: dict[str, str | None]) -> MailDsn:
    """RET and ENVID taken out of `params` (which keeps the others)."""
    ret = params.pop("RET", "")
    envid = params.pop("ENVID", "")
    if ret is None or (ret and ret.upper() not in ("FULL", "HDRS")):
        raise PathError("501 5.5.4 Bad RET parameter: FULL or HDRS (RFC 3461 §4.3)")
    if envid is None or len(envid) > MAX_ENVID:
        raise PathError(f"501 5.5.4 Bad ENVID parameter: 1 to {MAX_ENVID} characters (RFC 3461 §4.4)")
    return MailDsn(ret.upper(), _xtext(envid, "ENVID"))


def rcpt_dsn(params: dict[str, str | None]) -> RcptDsn:
    """NOTIFY and ORCPT taken out of `params` (which keeps the others)."""
    notify = params.pop("NOTIFY", "")
    orcpt = params.pop("ORCPT", "")
    words: tuple[str, ...] = ()
    if notify is None:
        raise PathError("501 5.5.4 Bad NOTIFY parameter: NEVER or SUCCESS,FAILURE,DELAY (RFC 3461 §4.1)")
    if notify:
        words = tuple(w.upper() for w in notify.split(","))
        if not (words == ("NEVER",) or (set(words) <= set(NOTIFY_WORDS) and len(set(words)) == len(words))):
            raise PathError("501 5.5.4 Bad NOTIFY parameter: NEVER or SUCCESS,FAILURE,DELAY (RFC 3461 §4.1)")
    if orcpt is None or len(orcpt) > MAX_ORCPT:
        raise PathError("501 5.5.4 Bad ORCPT parameter (RFC 3461 §4.2: addr-type;xtext)")
    if orcpt:
        kind, semi, value = orcpt.partition(";")
        if not semi or not _ADDR_TYPE.fullmatch(kind) or not value:
            raise PathError("501 5.5.4 Bad ORCPT parameter (RFC 3461 §4.2: addr-type;xtext)")
        orcpt = f"{kind};{_xtext(value, 'ORCPT')}"
    return RcptDsn(words, orcpt)
