"""Header fields, addresses and the ENVELOPE structure (RFC 3501 §7.4.2).

Works on the wire form of a message (CRLF line endings).  `header_fields`
splits a header block into fields, each kept as its raw octets (continuation
lines included) so BODY[HEADER.FIELDS] can return them as they are;
`field_value` unfolds one.  `parse_addresses` is a lenient RFC 5322 address
list parser (quoted strings, comments, angle addresses with routes, groups);
`envelope` renders the ENVELOPE parts.

As RFC 3501 asks, ENVELOPE strings are the header values as they stand
(unfolded, RFC 2047 encoded-words left encoded); an address without a domain
gets the host "MISSING_DOMAIN" (as Dovecot does), because a NIL host means
the start of a group.
"""

from __future__ import annotations

from typing import Iterable

from .response import Part, nstring, string

Address = tuple[str | None, str | None, str | None, str | None]     # name, adl, mailbox, host
GROUP_END: Address = (None, None, None, None)


def header_fields(block: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, raw field with its CRLFs) for each field of a header block.

    Stops at the blank line; a line that is neither a field nor a continuation
    is kept under the name "" (it appears in HEADER, never in HEADER.FIELDS).
    """
    out: list[tuple[str, bytes]] = []
    pos, n = 0, len(block)
    while pos < n:
        nl = block.find(b"\n", pos)
        end = n if nl < 0 else nl + 1
        line = block[pos:end]
        pos = end
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and out:
            name, raw = out[-1]
            out[-1] = (name, raw + line)
            continue
        colon = line.find(b":")
        name = line[:colon].strip().decode("latin-1").lower() if colon > 0 else ""
        out.append((name, line))
    return out


def field_value(raw: bytes) -> bytes:
    """The unfolded value of one raw field (RFC 5322 §2.2.3), without leading/trailing space."""
    value = raw[raw.find(b":") + 1:]
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    return value.strip(b" \t\r\n")


def first_value(fields: Iterable[tuple[str, bytes]], name: str) -> bytes | None:
    for n, raw in fields:
        if n == name:
            return field_value(raw)
    return None


# ---- addresses -------------------------------------------------------------------------

def _tokens(text: str) -> list[tuple[str, str, bool]]:
    """(kind, text, space_before): kinds atom, qs (unquoted), comment, dl, and the specials."""
    out: list[tuple[str, str, bool]] = []
    i, n = 0, len(text)
    space = False
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            space = True
            i += 1
            continue
        if c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            out.append(("qs", "".join(buf), space))
            i = j + 1
        elif c == "(":
            depth, j, buf = 1, i + 1, []
            while j < n and depth:
                ch = text[j]
                if ch == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                    if not depth:
                        break
                buf.append(ch)
                j += 1
            out.append(("comment", "".join(buf).strip(), space))
            i = j + 1
        elif c == "[":
            j = text.find("]", i)
            j = n - 1 if j < 0 else j
            out.append(("dl", text[i:j + 1], space))
            i = j + 1
        elif c in "<>,:;@.":
            out.append((c, c, space))
            i += 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n"(<>,:;@.[':
                j += 1
            out.append(("atom", text[i:j], space))
            i = j
        space = False
    return out


def _phrase(tokens: list[tuple[str, str, bool]]) -> str | None:
    words: list[str] = []
    for kind, text, space in tokens:
        if kind in ("atom", "qs", ".", "dl", "@"):
            if words and (space or kind == "qs") and kind != ".":
                words.append(" ")
            words.append(text)
    phrase = "".join(words).strip()
    return phrase or None


def _addr_spec(tokens: list[tuple[str, str, bool]]) -> tuple[str | None, str | None]:
    """(mailbox, host) from addr-spec tokens; host None when there is no "@"."""
    words = [(k, t) for k, t, _ in tokens if k != "comment"]
    at = max((i for i, (k, _) in enumerate(words) if k == "@"), default=-1)

    def join(ws: list[tuple[str, str]]) -> str:
        return "".join(f'"{t}"' if k == "qs" else t for k, t in ws)
    if at < 0:
        local = join(words)
        return (local or None), None
    return (join(words[:at]) or None), (join(words[at + 1:]) or None)


def _mailbox(tokens: list[tuple[str, str, bool]]) -> Address | None:
    kinds = [k for k, _, _ in tokens]
    if "<" in kinds:
        lt = kinds.index("<")
        gt = kinds.index(">", lt) if ">" in kinds[lt:] else len(tokens)
        name = _phrase(tokens[:lt])
        inner = tokens[lt + 1:gt]
        adl = None
        if inner and inner[0][0] == "@":
            colon = next((i for i, t in enumerate(inner) if t[0] == ":"), -1)
            if colon >= 0:
                adl = "".join(t for _, t, _ in inner[:colon]) or None
                inner = inner[colon + 1:]
        local, host = _addr_spec(inner)
        if local is None and host is None:
            return None                     # <>: the null address
        return (name, adl, local or "MISSING_MAILBOX", host or "MISSING_DOMAIN")
    local, host = _addr_spec(tokens)
    if local is None and host is None:
        return None
    comments = [t for k, t, _ in tokens if k == "comment" and t]
    return (comments[-1] if comments else None, None, local or "MISSING_MAILBOX", host or "MISSING_DOMAIN")


def parse_addresses(value: bytes | str | None) -> list[Address]:
    """An address list (RFC 5322 §3.4), groups as (None, None, name, None) … GROUP_END."""
    if value is None:
        return []
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    out: list[Address] = []
    current: list[tuple[str, str, bool]] = []
    angle = 0
    in_group = False

    def flush() -> None:
        if current:
            addr = _mailbox(current)
            if addr is not None:
                out.append(addr)
            current.clear()

    for tok in _tokens(text):
        kind = tok[0]
        if kind == "<":
            angle += 1
        elif kind == ">":
            angle = max(angle - 1, 0)
        elif angle == 0 and kind == ":" and not in_group:
            out.append((None, None, _phrase(current) or "", None))
            current.clear()
            in_group = True
            continue
        elif angle == 0 and kind == ";" and in_group:
            flush()
            out.append(GROUP_END)
            in_group = False
            continue
        elif angle == 0 and kind == ",":
            flush()
            continue
        current.append(tok)
        if len(out) > 1000:
            break
    flush()
    if in_group:
        out.append(GROUP_END)
    return out


def address_list(addrs: list[Address]) -> list[Part]:
    if not addrs:
        return ["NIL"]
    parts: list[Part] = ["("]
    for name, adl, mailbox, host in addrs:
        parts += ["(", nstring(name), " ", nstring(adl), " ", nstring(mailbox), " ", nstring(host), ")"]
    parts.append(")")
    return parts


def compact(parts: list[Part]) -> list[Part]:
    """Merge neighbouring text parts (fewer, longer strings to join later)."""
    out: list[Part] = []
    text: list[str] = []
    for p in parts:
        if type(p) is str:
            text.append(p)                      # type: ignore[arg-type]
        else:
            if text:
                out.append("".join(text))
                text = []
            out.append(p)
    if text:
        out.append("".join(text))
    return out


def envelope(fields: list[tuple[str, bytes]]) -> list[Part]:
    """ENVELOPE (RFC 3501 §7.4.2): date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id."""
    values: dict[str, bytes] = {}
    for name, raw in fields:
        if name in _ENVELOPE_FIELDS and name not in values:
            values[name] = field_value(raw)
    frm = parse_addresses(values.get("from"))
    sender = parse_addresses(values.get("sender")) or frm
    reply_to = parse_addresses(values.get("reply-to")) or frm
    parts: list[Part] = ["(", _nvalue(values.get("date")), " ", _nvalue(values.get("subject")), " "]
    for addrs in (frm, sender, reply_to, parse_addresses(values.get("to")),
                  parse_addresses(values.get("cc")), parse_addresses(values.get("bcc"))):
        parts += address_list(addrs)
        parts.append(" ")
    parts += [_nvalue(values.get("in-reply-to")), " ", _nvalue(values.get("message-id")), ")"]
    return compact(parts)


_ENVELOPE_FIELDS = frozenset({"date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
                              "in-reply-to", "message-id"})


def _nvalue(value: bytes | None) -> Part:
    return "NIL" if value is None else string(value)
