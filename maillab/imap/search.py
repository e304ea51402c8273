"""SEARCH (RFC 3501 §6.4.4, RFC 7162 MODSEQ): evaluating a key tree over the selected mailbox.

`Compiler` turns the parser's tuple tree into one filter over the mailbox,
set at a time: each key narrows a list of message positions (`Pool`), so a
flag, size, date or UID key is one pass over plain values, and a header key
already in the cache is one pass over the cached text.  AND lists run the keys
answered from the index in memory (flags, sizes, dates, UIDs, sequence
numbers) before those that read the message (headers, then bodies), each on
what the previous ones left.

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
from bisect import bisect_left, bisect_right
from typing import Callable, Collection, Iterable

from ..store import Folder, Message
from ..store.errors import MessageGone
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
        key = "h:" + name
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
        key = "a:" + name
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
    key = "sentday"
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


def _cache_keys(key: tuple, keys: set[str]) -> bool:
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
        keys.add("h:" + name)
        if name in _ADDRESS_HEADERS:
            keys.add("a:" + name)
    elif kind == "date" and key[3]:
        keys.add("sentday")
    return True


def memory_only(key: tuple, folder: Folder, uids: Iterable[int]) -> bool:
    """Whether SEARCH `key` over the messages `uids` of `folder` reads no file: index keys, and
    header keys every one of them has cached."""
    keys: set[str] = set()
    if not _cache_keys(key, keys):
        return False
    if not keys:
        return True
    get = folder.get
    return all(k in m.cache for u in uids if (m := get(u)) is not None for k in keys)


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


class Pool:
    """The selected mailbox under test: its messages by position (sequence number - 1; None for
    one that is gone), and one `Candidate` moved from message to message for the keys that
    read a message.  A message that vanishes while being read is set aside in `gone`."""

    __slots__ = ("folder", "msgs", "recent", "gone", "_candidate")

    def __init__(self, folder: Folder, msgs: list[Message | None], recent: Collection[int]) -> None:
        self.folder = folder
        self.msgs = msgs
        self.recent = recent
        self.gone: set[int] = set()
        self._candidate: Candidate | None = None

    def everyone(self) -> list[int]:
        return [i for i, m in enumerate(self.msgs) if m is not None]

    def each(self, idx: list[int], test: Predicate) -> list[int]:
        """The positions in `idx` whose message passes `test`, which may read it."""
        out: list[int] = []
        msgs, recent, c = self.msgs, self.recent, self._candidate
        for i in idx:
            m = msgs[i]
            assert m is not None
            if c is None:
                c = self._candidate = Candidate(self.folder, i + 1, m, m.uid in recent)
            else:
                c.move_to(i + 1, m, m.uid in recent)
            try:
                if test(c):
                    out.append(i)
            except MessageGone:
                self.gone.add(i)
        return out


# A key compiled: the positions (ascending) of `idx` whose messages match it.
Filter = Callable[[Pool, list[int]], list[int]]


def _cached_text(key: str, needle: str, slow: Predicate) -> Filter:
    """Messages whose `Message.cache` text `key` (None: no such field) contains `needle`: in
    one pass when every message has the entry, else message by message through `slow`, which
    fills the cache."""
    def run(pool: Pool, idx: list[int]) -> list[int]:
        msgs = pool.msgs
        try:
            return [i for i in idx if (t := msgs[i].cache[key]) is not None and needle in t]  # type: ignore[union-attr]
        except KeyError:
            return pool.each(idx, slow)
    return run


def _flag_filter(flag: str, present: bool) -> Filter:
    def run(pool: Pool, idx: list[int]) -> list[int]:
        msgs = pool.msgs
        sets = {msgs[i].flags for i in idx}                           # type: ignore[union-attr]
        good = {fs for fs in sets if (flag in _lowered(fs)) == present}
        if len(good) == len(sets):
            return idx
        return [i for i in idx if msgs[i].flags in good]              # type: ignore[union-attr]
    return run


def _span_filter(ranges: list[tuple[int, int]], value: Callable[[Pool, int], int]) -> Filter:
    """Positions whose `value` (ascending with the position: seq or UID) is in one of `ranges`."""
    def run(pool: Pool, idx: list[int]) -> list[int]:
        def key(i: int) -> int:
            return value(pool, i)
        out: list[int] = []
        for lo, hi in ranges:
            out.extend(idx[bisect_left(idx, lo, key=key):bisect_right(idx, hi, key=key)])
        return out
    return run


def _where(test: Callable[[Message], bool]) -> Filter:
    return lambda pool, idx: [i for i in idx if test(pool.msgs[i])]  # type: ignore[arg-type]


def _and(filters: list[Filter]) -> Filter:
    def run(pool: Pool, idx: list[int]) -> list[int]:
        for f in filters:
            if not idx:
                break
            idx = f(pool, idx)
        return idx
    return run


def _or(a: Filter, b: Filter) -> Filter:
    def run(pool: Pool, idx: list[int]) -> list[int]:
        first = a(pool, idx)
        if len(first) == len(idx):
            return first
        taken = set(first)
        return sorted(first + b(pool, [i for i in idx if i not in taken]))
    return run


def _not(f: Filter) -> Filter:
    def run(pool: Pool, idx: list[int]) -> list[int]:
        out = set(f(pool, idx))
        return [i for i in idx if i not in out]
    return run


class Compiler:
    """Builds filters, cheapest keys of an AND first; knows the mailbox size and largest UID for "*"."""

    def __init__(self, exists: int, max_uid: int) -> None:
        self.exists = exists
        self.max_uid = max_uid

    def compile(self, key: tuple) -> tuple[Filter, int]:
        kind = key[0]
        if kind == "all":
            return (lambda pool, idx: idx), _COST_FLAGS
        if kind == "and":
            compiled = sorted((self.compile(k) for k in key[1]), key=lambda fc: fc[1])
            return _and([f for f, _ in compiled]), max(cost for _, cost in compiled)
        if kind == "or":
            (a, ca), (b, cb) = sorted((self.compile(key[1]), self.compile(key[2])), key=lambda fc: fc[1])
            return _or(a, b), max(ca, cb)
        if kind == "not":
            f, cost = self.compile(key[1])
            return _not(f), cost
        if kind == "flag":
            return _flag_filter(key[1].lower(), key[2]), _COST_FLAGS
        if kind in ("recent", "new", "old"):
            def recency(pool: Pool, idx: list[int]) -> list[int]:
                msgs, recent = pool.msgs, pool.recent
                if kind == "old":
                    return [i for i in idx if msgs[i].uid not in recent]      # type: ignore[union-attr]
                hits = [i for i in idx if msgs[i].uid in recent]               # type: ignore[union-attr]
                if kind == "new":
                    return [i for i in hits if "\\Seen" not in msgs[i].flags]  # type: ignore[union-attr]
                return hits
            return recency, _COST_FLAGS
        if kind == "size":
            larger, n = key[1], key[2]
            return _where((lambda m: m.size > n) if larger else (lambda m: m.size < n)), _COST_FLAGS
        if kind == "modseq":
            n = key[1]
            return _where(lambda m: m.modseq >= n), _COST_FLAGS
        if kind == "seq":
            return _span_filter(ranges_of(key[1], self.exists), lambda pool, i: i + 1), _COST_FLAGS
        if kind == "uid":
            return _span_filter(ranges_of(key[1], self.max_uid),
                                lambda pool, i: pool.msgs[i].uid), _COST_FLAGS     # type: ignore[union-attr]
        if kind == "date":
            op, day, sent = key[1], key[2], key[3]
            compare = {"before": lambda d: d < day, "on": lambda d: d == day, "since": lambda d: d >= day}[op]
            if sent:
                def sent_pred(c: Candidate) -> bool:
                    d = _sent_day(c)
                    return d is not None and compare(d)
                return (lambda pool, idx: pool.each(idx, sent_pred)), _COST_HEADER
            return _where(lambda m: compare(_day_local(m.internaldate))), _COST_FLAGS
        if kind == "header":
            name, needle = key[1], key[2].casefold()

            def header_pred(c: Candidate) -> bool:
                text = c.header_text(name)
                return text is not None and needle in text

            by_header = _cached_text("h:" + name, needle, header_pred)
            if name not in _ADDRESS_HEADERS:
                return by_header, _COST_HEADER
            by_address = _cached_text("a:" + name, needle, lambda c: needle in c.address_text(name))
            return _or(by_address, by_header), _COST_HEADER
        if kind == "body":
            needle = key[1].casefold()
            return (lambda pool, idx: pool.each(idx, lambda c: needle in body_text(c))), _COST_BODY
        if kind == "text":
            needle = key[1].casefold()

            def text_pred(c: Candidate) -> bool:
                return needle in decode_header(c.header()).casefold() or needle in body_text(c)
            return (lambda pool, idx: pool.each(idx, text_pred)), _COST_BODY
        raise ValueError(f"unknown search key {kind}")
