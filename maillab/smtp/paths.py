"""MAIL FROM / RCPT TO arguments: the path and its parameters, by the grammar of RFC 5321 §4.1.2.

    Reverse-path = Path / "<>"                Forward-path = Path / "<Postmaster>"
    Path         = "<" [ A-d-l ":" ] Mailbox ">"          (the source route, A-d-l,
    Mailbox      = Local-part "@" ( Domain / address-literal )   is accepted and dropped:
    Local-part   = Dot-string / Quoted-string                    RFC 5321 §4.1.1.3, §C)

With SMTPUTF8 (RFC 6531 §3.3) atext and sub-domains may hold UTF-8 as well;
`parse_path` accepts it and says whether the address needs SMTPUTF8, the
caller decides.  Like Postfix (strict_rfc821_envelopes = no), a path without
its angle brackets (`MAIL FROM: santa@northpole.org`, typed in nc) is taken;
one with "<" and no ">" is not.  Errors are `PathError`s whose text is the
reply's, with the RFC 3463 code that fits.  Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PATH = 256            # RFC 5321 §4.5.3.1.3, the angle brackets included
MAX_LOCAL = 64            # §4.5.3.1.1
MAX_DOMAIN = 255          # §4.5.3.1.2

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_QUOTED = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"')
_LABEL = r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*[A-Za-z0-9\u0080-\U0010ffff])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_LITERAL = re.compile(r"\[(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|IPv6:[0-9A-Fa-f:.]{2,45}|"
                      r"[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+)\]")
_ROUTE = re.compile(rf"@{_DOMAIN.pattern}(?:,@{_DOMAIN.pattern})*:")
_PARAM = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+))?")


class PathError(ValueError):
    """A path or parameter the server refuses: `reply` is the whole reply line."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Path:
    address: str              # local@domain as given ("" for "<>", "postmaster" for "<Postmaster>")
    utf8: bool                # non-ASCII in it: needs SMTPUTF8 (RFC 6531 §3.5)
    params: dict[str, str | None]   # keyword (upper case) -> value


def _bad(text: str, enhanced: str = "5.1.3") -> PathError:
    return PathError(f"501 {enhanced} Bad address syntax: {text}")


def parse_path(arg: str, *, forward: bool) -> Path:
    """`arg` is what follows "MAIL FROM:" / "RCPT TO:"; `forward`: a RCPT's path."""
    text = arg.lstrip(" ")
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in text):
        raise PathError("501 5.6.7 Bad address syntax: address is not valid UTF-8")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise _bad("control character in address")
    if text.startswith("<"):
        end = _closing(text)
        inner, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(" "):
            raise _bad(f"junk after the closing '>': {rest[:20]!r}")
    else:
        inner, _, rest = text.partition(" ")
        if not inner:
            raise _bad("empty address; use <> for the null sender" if not forward else "empty address")
        if ">" in inner:
            raise _bad("'>' without '<'")
    if len(inner) + 2 > MAX_PATH:
        raise _bad(f"path too long (RFC 5321 §4.5.3.1.3: at most {MAX_PATH} octets)")
    route = _ROUTE.match(inner)
    if route is not None:
        inner = inner[route.end():]          # RFC 5321 §4.1.1.3: the route is ignored
    address = _mailbox(inner, forward=forward, bracketed=text.startswith("<"))
    return Path(address, not address.isascii(), parse_params(rest))


def _closing(text: str) -> int:
    """Where the ">" that ends the path starts ("<" at 0); a quoted ">" does not count."""
    quoted = escaped = False
    for i, c in enumerate(text[1:], 1):
        if escaped:
            escaped = False
        elif c == "\\" and quoted:
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            return i
        elif c == "<" and not quoted:
            raise _bad("'<' inside the path")
    raise _bad("missing '>' at the end of the path (RFC 5321 §4.1.2: Path = \"<\" Mailbox \">\")")


def _mailbox(text: str, *, forward: bool, bracketed: bool) -> str:
    if text == "":
        if forward or not bracketed:
            raise _bad("empty address")
        return ""                                          # the null reverse-path
    if forward and text.lower() == "postmaster":
        return "postmaster"                                # RFC 5321 §4.5.1: always accepted
    if _QUOTED.match(text) is not None:
        local_end = _QUOTED.match(text).end()              # type: ignore[union-attr]
    else:
        m = _DOT_STRING.match(text)
        local_end = m.end() if m is not None else 0
    local, rest = text[:local_end], text[local_end:]
    if not local:
        raise _bad(f"bad local part in {text[:40]!r}")
    if not rest.startswith("@"):
        if rest:
            raise _bad(f"bad character {rest[0]!r} in the local part")
        raise _bad("need user@domain")
    if len(local.encode()) > MAX_LOCAL:
        raise _bad(f"local part over {MAX_LOCAL} octets (RFC 5321 §4.5.3.1.1)")
    domain = rest[1:]
    if domain.startswith("["):
        if _LITERAL.fullmatch(domain) is None:
            raise _bad(f"bad address literal {domain[:40]!r}" if domain.endswith("]")
                       else "unterminated address literal (missing ']')", "5.1.2")
    elif not domain:
        raise _bad("missing domain after '@'", "5.1.2")
    elif _DOMAIN.fullmatch(domain) is None or len(domain.encode()) > MAX_DOMAIN \
            or any(len(label) > 63 for label in domain.split(".")):
        raise _bad(f"bad domain name {domain[:60]!r}", "5.1.2")
    return f"{local}@{domain}"


def parse_params(text: str) -> dict[str, str | None]:
    """`KEYWORD[=value]` words after the path (RFC 5321 §4.1.2 esmtp-param); upper-case keys."""
    params: dict[str, str | None] = {}
    for word in text.split(" "):
        if not word:
            continue
        m = _PARAM.fullmatch(word)
        if m is None:
            raise PathError(f"501 5.5.4 Bad parameter syntax: {word[:40]!r}")
        key = m.group(1).upper()
        if key in params:
            raise PathError(f"501 5.5.4 Parameter {key} given twice")
        params[key] = m.group(2)
    return params
