"""The MIME structure of a message by octet offsets: BODYSTRUCTURE and BODY[section] (RFC 3501 §6.4.5, §7.4.2).

`parse(data)` walks a message in wire form (CRLF) and returns a tree of
`Part`s that point into `data` (start of header, start of body, end), split
at multipart boundaries as RFC 2046 §5.1.1 says (the CRLF before a delimiter
belongs to the delimiter) and descending into message/rfc822 parts.  Every
section FETCH returns and every size BODYSTRUCTURE reports is a slice of the
same `data`, so they always agree.  Header parameters (Content-Type and
Content-Disposition) are parsed here too; RFC 2231 parameters are passed on
as written, as Dovecot does.

Part numbering (RFC 3501 §6.4.5): the parts of a multipart are 1, 2, …; a
non-multipart message has one part, 1, its body; part n of a message/rfc822
part is part n of the message inside.  `find(root, path)` follows those rules.

Bounded work for hostile input: at most `MAX_DEPTH` levels and `MAX_PARTS`
parts per message; beyond that a multipart is shown as an opaque leaf.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .envelope import compact, envelope, field_value, header_fields
from .parser import Section
from .response import Part as Out, nstring, string

MAX_DEPTH = 40
MAX_PARTS = 2000

_CTYPE = re.compile(rb"^\s*([^\s/;]+)\s*/\s*([^\s;]+)")
_PARAM = re.compile(rb';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_DISP = re.compile(rb"^\s*([^\s;]+)")
_COMMENT = re.compile(rb"\([^()\"]*\)")


@dataclass(slots=True, eq=False)
class Part:
    start: int                              # first octet of the header
    body: int                               # first octet of the body
    end: int                                # one past the last octet
    fields: list[tuple[str, bytes]]
    maintype: str                           # lower case
    subtype: str
    params: list[tuple[bytes, bytes]]       # as written (names lower-cased)
    defaulted: bool = False                 # no usable Content-Type: the RFC 2045 default
    children: list["Part"] = field(default_factory=list)
    message: "Part | None" = None           # the message inside a message/rfc822 part

    def value(self, name: str) -> bytes | None:
        for n, raw in self.fields:
            if n == name:
                return field_value(raw)
        return None

    def param(self, name: bytes) -> bytes | None:
        for n, v in self.params:
            if n == name:
                return v
        return None


def header_end(data: bytes, start: int, end: int) -> int:
    """Where the body begins: just after the blank line that ends the header (or `end`)."""
    if data.startswith(b"\r\n", start):
        return start + 2
    i = data.find(b"\r\n\r\n", start, end)
    return end if i < 0 else i + 4


def parse_params(value: bytes, start: int) -> list[tuple[bytes, bytes]]:
    out = []
    for m in _PARAM.finditer(value, start):
        raw = m.group(2).strip()
        if raw.startswith(b'"'):
            raw = re.sub(rb"\\(.)", rb"\1", raw[1:-1] if raw.endswith(b'"') and len(raw) > 1 else raw[1:])
        out.append((m.group(1).lower(), raw))
        if len(out) >= 100:
            break
    return out


def parse_ctype(value: bytes | None) -> tuple[str, str, list[tuple[bytes, bytes]]] | None:
    if value is None:
        return None
    value = _COMMENT.sub(b"", value)
    m = _CTYPE.match(value)
    if m is None:
        return None
    main = m.group(1).decode("latin-1").lower()
    sub = m.group(2).decode("latin-1").lower()
    return main, sub, parse_params(value, m.end())


def parse(data: bytes) -> Part:
    """The MIME tree of a whole message (wire form)."""
    budget = [MAX_PARTS]
    return _entity(data, 0, len(data), ("text", "plain"), 0, budget)


def _entity(data: bytes, start: int, end: int, default: tuple[str, str], depth: int,
            budget: list[int]) -> Part:
    budget[0] -= 1
    body = header_end(data, start, end)
    fields = header_fields(data[start:body])
    ctype = None
    for name, raw in fields:
        if name == "content-type":
            ctype = parse_ctype(field_value(raw))
            break
    if ctype is None:
        part = Part(start, body, end, fields, default[0], default[1],
                    [(b"charset", b"us-ascii")] if default[0] == "text" else [], defaulted=True)
    else:
        part = Part(start, body, end, fields, *ctype)
    if depth >= MAX_DEPTH or budget[0] <= 0:
        return part
    if part.maintype == "multipart":
        boundary = part.param(b"boundary")
        child_default = ("message", "rfc822") if part.subtype == "digest" else ("text", "plain")
        if boundary:
            for s, e in split(data, body, end, boundary):
                if budget[0] <= 0:
                    break
                part.children.append(_entity(data, s, e, child_default, depth + 1, budget))
        if not part.children:               # RFC 3501 needs at least one part: an empty text/plain
            part.children.append(Part(body, body, body, [], "text", "plain",
                                      [(b"charset", b"us-ascii")], defaulted=True))
    elif part.maintype == "message" and part.subtype in ("rfc822", "global"):
        cte = (part.value("content-transfer-encoding") or b"7bit").strip().lower()
        if cte in (b"7bit", b"8bit", b"binary"):
            part.message = _entity(data, body, end, ("text", "plain"), depth + 1, budget)
    return part


def split(data: bytes, body: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """The (start, end) of each body part between the delimiter lines of `boundary` (RFC 2046 §5.1.1)."""
    delim = b"--" + boundary
    out: list[tuple[int, int]] = []
    pos = body
    part_start: int | None = None
    while True:
        i = data.find(delim, pos, end)
        if i < 0:
            break
        if i != body and data[i - 2:i] != b"\r\n":
            pos = i + 1
            continue
        after = i + len(delim)
        closing = data.startswith(b"--", after) and after + 2 <= end
        tail_start = after + 2 if closing else after
        nl = data.find(b"\r\n", tail_start, end)
        line_end = end if nl < 0 else nl + 2
        if not closing and data[tail_start:line_end].strip(b" \t\r\n"):
            pos = i + 1                     # "--boundaryX": a longer boundary, not ours
            continue
        if part_start is not None:
            out.append((part_start, max(part_start, i - 2 if i >= 2 and i != body else i)))
        if closing:
            return out
        part_start = line_end
        pos = line_end
    if part_start is not None:
        out.append((part_start, end))       # no close delimiter: the last part runs to the end
    return out


def find(root: Part, path: tuple[int, ...]) -> Part | None:
    """The part at `path` (RFC 3501 §6.4.5 numbering); None if there is none."""
    node = root
    for depth, n in enumerate(path):
        container = node.message if (depth > 0 and node.message is not None) else node
        if container.maintype == "multipart":
            if n > len(container.children):
                return None
            node = container.children[n - 1]
        elif n == 1:
            node = container
        else:
            return None
    return node


def section(data: bytes, root: Part, sec: Section) -> bytes | None:
    """The octets of BODY[section] (without partial), None if the part does not exist."""
    if not sec.part:
        msg = root
    else:
        node = find(root, sec.part)
        if node is None:
            return None
        if sec.text == "":
            return data[node.body:node.end]
        if sec.text == "MIME":
            return data[node.start:node.body]
        msg = node.message if node.message is not None else node
    if sec.text == "":
        return data[msg.start:msg.end]
    if sec.text == "TEXT":
        return data[msg.body:msg.end]
    header = data[msg.start:msg.body]
    if sec.text == "HEADER":
        return header
    return header_subset(header, sec.fields, sec.text == "HEADER.FIELDS.NOT")


def header_subset(header: bytes, names: tuple[str, ...], exclude: bool) -> bytes:
    """HEADER.FIELDS / HEADER.FIELDS.NOT: the matching raw fields, then the blank line."""
    wanted = set(names)
    picked = [raw for name, raw in header_fields(header)
              if name and ((name in wanted) != exclude)]
    return b"".join(raw if raw.endswith(b"\n") else raw + b"\r\n" for raw in picked) + b"\r\n"


# ---- BODYSTRUCTURE -------------------------------------------------------------------------

def _lines(data: bytes, start: int, end: int) -> int:
    n = data.count(b"\n", start, end)
    if end > start and data[end - 1] != 0x0a:
        n += 1
    return n


def _params(params: list[tuple[bytes, bytes]]) -> list[Out]:
    if not params:
        return ["NIL"]
    parts: list[Out] = ["("]
    for i, (name, value) in enumerate(params):
        if i:
            parts.append(" ")
        parts += [string(name.upper()), " ", string(value)]
    parts.append(")")
    return parts


def _disposition(part: Part) -> list[Out]:
    value = part.value("content-disposition")
    if value is None:
        return ["NIL"]
    value = _COMMENT.sub(b"", value)
    m = _DISP.match(value)
    if m is None:
        return ["NIL"]
    return ["(", string(m.group(1).upper()), " ", *_params(parse_params(value, m.end())), ")"]


def _language(part: Part) -> list[Out]:
    value = part.value("content-language")
    if not value:
        return ["NIL"]
    tags = [t for t in re.split(rb"[\s,]+", _COMMENT.sub(b"", value)) if t]
    if not tags:
        return ["NIL"]
    if len(tags) == 1:
        return [string(tags[0])]
    parts: list[Out] = ["("]
    for i, t in enumerate(tags[:20]):
        parts += ([" "] if i else []) + [string(t)]
    return parts + [")"]


def structure(data: bytes, part: Part, extended: bool) -> list[Out]:
    """BODYSTRUCTURE (extended) or BODY of a part (RFC 3501 §7.4.2 body)."""
    return compact(_structure(data, part, extended))


def _structure(data: bytes, part: Part, extended: bool) -> list[Out]:
    out: list[Out] = ["("]
    if part.maintype == "multipart" and part.children:
        for child in part.children:
            out += _structure(data, child, extended)
        out += [" ", string(part.subtype.upper())]
        if extended:
            out += [" ", *_params(part.params), " ", *_disposition(part), " ", *_language(part),
                    " ", nstring(part.value("content-location"))]
        out.append(")")
        return out
    enc = part.value("content-transfer-encoding")
    out += [string(part.maintype.upper()), " ", string(part.subtype.upper()), " ", *_params(part.params),
            " ", nstring(part.value("content-id")), " ", nstring(part.value("content-description")),
            " ", string(enc.upper() if enc else b"7BIT"), " ", str(part.end - part.body)]
    if part.message is not None:
        inner = part.message
        out += [" ", *envelope(inner.fields), " ", *_structure(data, inner, extended),
                " ", str(_lines(data, part.body, part.end))]
    elif part.maintype == "text":
        out += [" ", str(_lines(data, part.body, part.end))]
    if extended:
        out += [" ", nstring(part.value("content-md5")), " ", *_disposition(part), " ", *_language(part),
                " ", nstring(part.value("content-location"))]
    out.append(")")
    return out
