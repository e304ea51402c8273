"""Reading a message as a mail client shows it: headers, the text, the MIME tree, attachments.

All functions take the message's octets (CRLF or LF).  `headers` gives the
short set a reading pane shows (From, To, Cc, Date, Subject) or every field,
decoded from RFC 2047; `text` the readable text — the first text/plain part
(format=flowed joined back, RFC 3676), else the first text/html part as
plain text; `mime_tree` the parts with IMAP's part numbers (RFC 3501 §6.4.5);
`attachment` one part's name and octets, `save_attachment` writes it into a
folder under a name made safe (no path tricks), by temp file then rename.
`verdicts` reads what the receiving host concluded about the sender from the
topmost Authentication-Results field (RFC 8601).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

from ..base.fsutil import write_durable

SHORT = ("From", "To", "Cc", "Date", "Subject")
_BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote",
           "pre", "hr", "ul", "ol", "section", "article", "header", "footer"}
_UNSAFE = re.compile(r"[\x00-\x1f/\\:]")


def parse(msg: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(msg)  # type: ignore[return-value]


def headers(msg: bytes, *, full: bool = False) -> list[tuple[str, str]]:
    """(name, decoded value): the short set, in that order, or every field as it stands."""
    m = parse(msg)
    if full:
        return [(name, " ".join(str(value).split())) for name, value in m.items()]
    return [(name, " ".join(str(m[name]).split())) for name in SHORT if m[name] is not None]


class _Text(HTMLParser):
    """HTML as readable text: scripts and styles dropped, blocks on lines of their own, links
    shown as `text <url>`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0
        self._href: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in _BLOCKS:
            self.out.append("\n")
        if tag == "li":
            self.out.append("* ")
        if tag == "a":
            self._href.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self.out.append("\n")
        if tag == "a" and self._href:
            href = self._href.pop()
            if href and not href.startswith("#"):
                self.out.append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [" ".join(line.split()) for line in "".join(self.out).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def html_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return unescape(parser.text())


def unflow(body: str, delsp: bool = False) -> str:
    """RFC 3676 §4.2: a line ending in a space is joined with the next; space-stuffing undone."""
    out: list[str] = []
    joining = False
    for line in body.split("\n"):
        line = line.rstrip("\r")
        if line.startswith(" "):
            line = line[1:]
        if joining:
            out[-1] += line
        else:
            out.append(line)
        joining = line.endswith(" ") and line != "-- "
        if joining and delsp:
            out[-1] = out[-1][:-1]
    return "\n".join(out)


def _content(part: Message) -> str:
    try:
        return part.get_content()  # type: ignore[attr-defined,no-any-return]
    except (LookupError, ValueError):             # an unknown charset: as Latin-1, never a crash
        payload = part.get_payload(decode=True)
        return payload.decode("latin-1") if isinstance(payload, bytes) else str(payload)


def text(msg: bytes) -> str:
    """The readable text of a message, "" if it has none."""
    m = parse(msg)
    html = None
    for part in m.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            body = _content(part).replace("\r\n", "\n")
            if part.get_param("format", "").lower() == "flowed":
                body = unflow(body, part.get_param("delsp", "").lower() == "yes")
            return body
        if kind == "text/html" and html is None:
            html = part
    return html_text(_content(html)) if html is not None else ""


@dataclass(frozen=True, slots=True)
class Part:
    path: str              # IMAP part number: "1", "1.2"; "" the message itself
    depth: int
    content_type: str
    filename: str
    size: int              # decoded octets (0 for a multipart)
    disposition: str       # "attachment", "inline" or ""


def mime_tree(msg: bytes) -> list[Part]:
    """Every part, in order, with its IMAP part number."""
    out: list[Part] = []

    def visit(part: Message, path: str, depth: int) -> None:
        payload = None if part.is_multipart() else part.get_payload(decode=True)
        out.append(Part(path, depth, part.get_content_type(), part.get_filename() or "",
                        len(payload) if isinstance(payload, bytes) else 0, part.get_content_disposition() or ""))
        if part.is_multipart():
            for n, child in enumerate(part.get_payload(), 1):       # type: ignore[arg-type]
                visit(child, f"{path}.{n}" if path else str(n), depth + 1)

    visit(parse(msg), "", 0)
    return out


def _part(m: Message, path: str) -> Message:
    part = m
    for n in [int(x) for x in path.split(".") if x]:
        children = part.get_payload()
        if not part.is_multipart() or not 0 < n <= len(children):   # type: ignore[arg-type]
            raise KeyError(f"no part {path}")
        part = children[n - 1]                                      # type: ignore[index]
    return part


def attachment(msg: bytes, path: str) -> tuple[str, bytes]:
    """The filename and decoded octets of the part numbered `path`."""
    part = _part(parse(msg), path)
    payload = part.get_payload(decode=True)
    return part.get_filename() or "", payload if isinstance(payload, bytes) else b""


def attachment_parts(msg: bytes) -> list[tuple[str, bytes, str]]:
    """(filename, octets, content type) of every attachment."""
    out = []
    for part in parse(msg).iter_attachments():
        payload = part.get_payload(decode=True)
        out.append((part.get_filename() or "attachment", payload if isinstance(payload, bytes) else b"",
                    part.get_content_type()))
    return out


def safe_name(name: str) -> str:
    """A file name that stays in its folder: the last path component, no control characters,
    separators or leading dots, never empty."""
    base = _UNSAFE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip().lstrip(".")
    return base[:200] or "attachment"


def save_attachment(msg: bytes, path: str, folder: Path) -> Path:
    """Write the part numbered `path` into `folder` (" (2)" etc. before an existing name's suffix)."""
    name, data = attachment(msg, path)
    stem, dot, suffix = safe_name(name).rpartition(".")
    if not stem:
        stem, dot, suffix = suffix, "", ""
    target = folder / f"{stem}{dot}{suffix}"
    n = 2
    while target.exists():
        target = folder / f"{stem} ({n}){dot}{suffix}"
        n += 1
    write_durable(target, data)
    return target


_METHOD_RESULT = re.compile(r"^\s*(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.I)


def verdicts(header: bytes) -> tuple[str, dict[str, str]]:
    """(authserv-id, {"spf": "fail", "dkim": "pass", ...}) from the first Authentication-Results
    field — the one the last receiving host wrote, on top of what came before (RFC 8601 §2.2, §5);
    ("", {}) when there is none.  A method given twice keeps its first result."""
    field = BytesHeaderParser(policy=policy.compat32).parsebytes(header).get("Authentication-Results")
    if field is None:
        return "", {}
    authserv, _, rest = " ".join(str(field).split()).partition(";")
    found: dict[str, str] = {}
    for clause in rest.split(";"):
        m = _METHOD_RESULT.match(clause)
        if m:
            found.setdefault(m.group(1).lower(), m.group(2).lower())
    return authserv.strip(), found
