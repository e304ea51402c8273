"""SEARCH (RFC 3501 §6.4.4, RFC 7162 MODSEQ): evaluating a key tree over the selected mailbox.

`compile_key` turns the parser's tuple tree into one predicate over a
`Candidate` (sequence number, message snapshot, lazy access to its octets).
AND lists are reordered so that keys answered from the index in memory
(flags, sizes, dates, UIDs, sequence numbers) run before those that read the
message (headers, then bodies), and evaluation stops at the first failure.

FROM, TO, CC and BCC match "the envelope structure's field" (RFC 3501
§6.4.4): each address as `envelope.parse_addresses` reads it (ENVELOPE's own
parser), as its display name, mailbox@host and "name <mailbox@host>", so
`<user (comment)@ (comment) example.org>` is found by "user@example.org" as
Dovecot finds it.  The parser gives HEADER FROM the same key, and that one
means "the header contains the string", so the raw (decoded) field text
matches as well: a match in either form counts.

String matching is case-insensitive substring matching on decoded text:
header values have their RFC 2047 encoded-words decoded, bodies their
Content-Transfer-Encoding and charset.  Decoded header values are cached in
`Message.cache` (safe: a message's octets never change), so a second SEARCH
SUBJECT on a large mailbox reads no file.  Dates are compared by day,
disregarding time and zone (§6.4.4): the internal date in the server's local
time, the Date: header's day as written.
"""

from __future__ import annotations

import base64
import binascii
import email.header
import email.utils
import quopri
import time
from bisect import bisect_right
from typing import Callable, Iterable

from ..store import Message
from . import mime
from .envelope import field_value, parse_addresses
from .fetch import MessageData
from .parser import STAR, SeqSet

Predicate = Callable[["Candidate"], bool]

_COST_FLAGS, _COST_HEADER, _COST_BODY = 0, 1, 2


class Candidate(MessageData):
    """A message under test (MessageData) plus decoded header values, cached on the message."""

    __slots__ = ()

    def header_text(self, name: str) -> str | None:
        """The decoded, case-folded values of a header field (all of them, joined)."""
        key = ("h", name)
        cache = self.m.cache
        text = cache.get(key, _UNSET)
        if text is not _UNSET:
            return text                                             # type: ignore[no-any-return]
        values = [decode_header(field_value(raw)) for n, raw in self.fields() if n == name]
        text = "\n".join(values).casefold() if values else None
        if name in _CACHED_HEADERS:
            cache[key] = text
        return text


    def address_text(self, name: str) -> str:
        """The addresses of a header field as parsed (one form a line), case-folded; cached."""
        key = ("a", name)
        cache = self.m.cache
        text = cache.get(key)
        if text is None:
            forms: list[str] = []
            for n, raw in self.fields():
                if n == name:
                    for display, _adl, mailbox, host in parse_addresses(field_value(raw)):
                        forms.extend(_address_forms(display, mailbox, host))
            text = cache[key] = "\n".join(forms).casefold()
        return text


def _address_forms(display: str | None, mailbox: str | None, host: str | None) -> list[str]:
    """What an address is searched as: its display name, mailbox@host, "name <mailbox@host>"."""
    name = decode_header(display.encode("utf-8", "surrogateescape")) if display else ""
    spec = f"{mailbox}@{host}" if mailbox and host else mailbox or ""     # no host: a group's name
    forms = [f for f in (name, spec) if f]
    if name and host:
        forms.append(f"{name} <{spec}>")
    return forms


_CACHED_HEADERS = frozenset({"subject", "from", "to", "cc", "bcc", "date", "message-id"})
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc"})


def decode_header(raw: bytes) -> str:
    """A header value as text: RFC 2047 encoded-words decoded, raw 8-bit read as UTF-8."""
    text = raw.decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError, AssertionError):
        return text


def decode_body(data: bytes, part: mime.Part) -> str:
    """A leaf part's body as text: transfer encoding and charset undone (best effort)."""
    body = data[part.body:part.end]
    cte = (part.value("content-transfer-encoding") or b"").strip().lower()
    try:
        if cte == b"base64":
            body = base64.b64decode(b"".join(body.split()), validate=False)
        elif cte == b"quoted-printable":
            body = quopri.decodestring(body)
    except (binascii.Error, ValueError):
        pass
    charset = (part.param(b"charset") or b"utf-8").decode("ascii", "replace")
    try:
        return body.decode(charset, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def body_text(c: Candidate) -> str:
    """The searchable text of the body: every text part, decoded, case-folded."""
    data = c.full()
    texts: list[str] = []

    def walk(p: mime.Part) -> None:
        if p.children:
            for child in p.children:
                walk(child)
        elif p.message is not None:
            texts.append(decode_header(data[p.message.start:p.message.body]))
            walk(p.message)
        elif p.maintype == "text":
            texts.append(decode_body(data, p))
    walk(c.tree())
    if not texts:
        texts.append(data[c.tree().body:].decode("utf-8", "replace"))
    return "\n".join(texts).casefold()


def _day_local(ts: float) -> tuple[int, int, int]:
    t = time.localtime(ts)
    return t.tm_year, t.tm_mon, t.tm_mday


def _sent_day(c: Candidate) -> tuple[int, int, int] | None:
    key = ("sentday",)
    if key in c.m.cache:
        return c.m.cache[key]
    value = None
    raw = next((field_value(r) for n, r in c.fields() if n == "date"), None)
    if raw is not None:
        parsed = email.utils.parsedate_tz(raw.decode("latin-1"))
        if parsed is not None and parsed[0] and parsed[1] and parsed[2]:
            value = (parsed[0], parsed[1], parsed[2])
    c.m.cache[key] = value
    return value


_UNSET = object()
_lowered_memo: dict[frozenset[str], frozenset[str]] = {}


def _lowered(flags: frozenset[str]) -> frozenset[str]:
    """`flags` in lower case (flag names match case-insensitively), memoised: mailboxes share few flag sets."""
    low = _lowered_memo.get(flags)
    if low is None:
        if len(_lowered_memo) > 4096:
            _lowered_memo.clear()
        low = _lowered_memo[flags] = frozenset(f.lower() for f in flags)
    return low


def _cache_keys(key: tuple, keys: set[tuple[str, ...]]) -> bool:
    """Add to `keys` the `Message.cache` entries that answer `key`; False if a key must read a body."""
    kind = key[0]
    if kind == "and":
        return all(_cache_keys(k, keys) for k in key[1])
    if kind in ("or", "not"):
        return all(_cache_keys(k, keys) for k in key[1:])
    if kind in ("body", "text"):
        return False
    if kind == "header":
        name = key[1]
        if name not in _CACHED_HEADERS:
            return False
        keys.add(("h", name))
        if name in _ADDRESS_HEADERS:
            keys.add(("a", name))
    elif kind == "date" and key[3]:
        keys.add(("sentday",))
    return True


def memory_only(key: tuple, messages: Iterable[Message]) -> bool:
    """Whether SEARCH `key` over `messages` reads no file: index keys, and header keys already cached."""
    keys: set[tuple[str, ...]] = set()
    if not _cache_keys(key, keys):
        return False
    return not keys or all(k in m.cache for m in messages for k in keys)


def ranges_of(seqset: SeqSet, largest: int) -> list[tuple[int, int]]:
    """Resolve STAR, order each range, sort and merge: disjoint ascending (low, high) pairs."""
    spans = []
    for a, b in seqset.ranges:
        a = largest if a == STAR else a
        b = largest if b == STAR else b
        spans.append((min(a, b), max(a, b)))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def in_ranges(ranges: list[tuple[int, int]], lows: list[int], n: int) -> bool:
    """n in one of the disjoint sorted `ranges` (`lows` = their low ends)."""
    i = bisect_right(lows, n) - 1
    return i >= 0 and ranges[i][1] >= n


class Compiler:
    """Builds predicates; knows the mailbox size and largest UID for "*"."""

    def __init__(self, exists: int, max_uid: int) -> None:
        self.exists = exists
        self.max_uid = max_uid

    def compile(self, key: tuple) -> tuple[Predicate, int]:
        kind = key[0]
        if kind == "all":
            return (lambda c: True), _COST_FLAGS
        if kind == "and":
            compiled = sorted((self.compile(k) for k in key[1]), key=lambda pc: pc[1])
            preds = [p for p, _ in compiled]
            return (lambda c: all(p(c) for p in preds)), max(cost for _, cost in compiled)
        if kind == "or":
            (a, ca), (b, cb) = sorted((self.compile(key[1]), self.compile(key[2])), key=lambda pc: pc[1])
            return (lambda c: a(c) or b(c)), max(ca, cb)
        if kind == "not":
            p, cost = self.compile(key[1])
            return (lambda c: not p(c)), cost
        if kind == "flag":
            flag, present = key[1].lower(), key[2]
            return (lambda c: (flag in _lowered(c.m.flags)) == present), _COST_FLAGS
        if kind == "recent":
            return (lambda c: c.recent), _COST_FLAGS
        if kind == "new":
            return (lambda c: c.recent and "\\Seen" not in c.m.flags), _COST_FLAGS
        if kind == "old":
            return (lambda c: not c.recent), _COST_FLAGS
        if kind == "size":
            larger, n = key[1], key[2]
            return ((lambda c: c.m.size > n) if larger else (lambda c: c.m.size < n)), _COST_FLAGS
        if kind == "modseq":
            n = key[1]
            return (lambda c: c.m.modseq >= n), _COST_FLAGS
        if kind in ("seq", "uid"):
            largest = self.exists if kind == "seq" else self.max_uid
            ranges = ranges_of(key[1], largest)
            lows = [lo for lo, _ in ranges]
            if kind == "seq":
                return (lambda c: in_ranges(ranges, lows, c.seq)), _COST_FLAGS
            return (lambda c: in_ranges(ranges, lows, c.m.uid)), _COST_FLAGS
        if kind == "date":
            op, day, sent = key[1], key[2], key[3]
            compare = {"before": lambda d: d < day, "on": lambda d: d == day, "since": lambda d: d >= day}[op]
            if sent:
                def sent_pred(c: Candidate) -> bool:
                    d = _sent_day(c)
                    return d is not None and compare(d)
                return sent_pred, _COST_HEADER
            return (lambda c: compare(_day_local(c.m.internaldate))), _COST_FLAGS
        if kind == "header":
            name, needle = key[1], key[2].casefold()

            def header_pred(c: Candidate) -> bool:
                text = c.header_text(name)
                return text is not None and needle in text

            if name in _ADDRESS_HEADERS:
                return (lambda c: needle in c.address_text(name) or header_pred(c)), _COST_HEADER
            return header_pred, _COST_HEADER
        if kind == "body":
            needle = key[1].casefold()
            return (lambda c: needle in body_text(c)), _COST_BODY
        if kind == "text":
            needle = key[1].casefold()
            return (lambda c: needle in decode_header(c.header()).casefold() or needle in body_text(c)), _COST_BODY
        raise ValueError(f"unknown search key {kind}")
