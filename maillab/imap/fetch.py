"""FETCH data items (RFC 3501 §6.4.5, §7.4.2; RFC 7162 MODSEQ) for one message.

`MessageData` gives lazy access to one message: the index entry (flags,
size, date, UID, MODSEQ) costs nothing, the header is read only when an item
needs it (ENVELOPE, BODY[HEADER], HEADER.FIELDS) and the whole message only
when a body section does.  What is derived from the octets alone — ENVELOPE,
BODY, BODYSTRUCTURE — is cached in `Message.cache` (RFC 3501 messages are
immutable, so the cache never goes stale).

`render` builds one `* n FETCH (...)` response as parts (text and literals,
see response.py).  Section octets come from mime.py, so BODYSTRUCTURE sizes
and BODY[n] lengths always agree.
"""

from __future__ import annotations

import time
from typing import Iterable

from ..store import Folder, Message
from . import mime
from .envelope import envelope, header_fields
from .parser import FetchItem
from .response import Part

MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SYSTEM_ORDER = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_flag_memo: dict[tuple[frozenset[str], bool], str] = {}


def flags_text(flags: frozenset[str], recent: bool = False) -> str:
    """"(\\Seen $Forwarded ...)": system flags first, in a fixed order, then keywords sorted."""
    key = (flags, recent)
    text = _flag_memo.get(key)
    if text is None:
        ordered = [f for f in _SYSTEM_ORDER if f in flags]
        ordered += sorted(f for f in flags if f not in _SYSTEM_ORDER)
        if recent:
            ordered.append("\\Recent")
        text = "(" + " ".join(ordered) + ")"
        if len(_flag_memo) > 4096:
            _flag_memo.clear()
        _flag_memo[key] = text
    return text


def internaldate(ts: float) -> str:
    """RFC 3501 date-time in the server's local zone: "17-Jul-1996 02:44:25 -0700"."""
    t = time.localtime(ts)
    off = t.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return (f"{t.tm_mday:02d}-{MONTHS[t.tm_mon]}-{t.tm_year:04d} {t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d} {sign}{off // 3600:02d}{off % 3600 // 60:02d}")


class MessageData:
    """One message under FETCH or SEARCH: its index entry now, its octets when needed."""

    __slots__ = ("folder", "seq", "m", "recent", "_header", "_full", "_fields", "_tree")

    def __init__(self, folder: Folder, seq: int, m: Message, recent: bool = False) -> None:
        self.folder = folder
        self.seq = seq
        self.m = m
        self.recent = recent
        self._header: bytes | None = None
        self._full: bytes | None = None
        self._fields: list[tuple[str, bytes]] | None = None
        self._tree: mime.Part | None = None

    def move_to(self, seq: int, m: Message, recent: bool) -> None:
        """Be the data of another message of the folder (SEARCH tests every message with one object)."""
        self.seq, self.m, self.recent = seq, m, recent
        self._header = self._full = self._fields = self._tree = None

    def header(self) -> bytes:
        if self._header is None:
            if self._full is not None:
                self._header = self._full[:mime.header_end(self._full, 0, len(self._full))]
            else:
                self._header = self.folder.read_header(self.m.uid, crlf=True)
        return self._header

    def full(self) -> bytes:
        if self._full is None:
            self._full = self.folder.read(self.m.uid, crlf=True)
        return self._full

    def fields(self) -> list[tuple[str, bytes]]:
        if self._fields is None:
            self._fields = header_fields(self.header())
        return self._fields

    def tree(self) -> mime.Part:
        if self._tree is None:
            self._tree = mime.parse(self.full())
        return self._tree

    # ---- derived, cached on the message --------------------------------------------------

    def header_subset(self, names: tuple[str, ...], exclude: bool) -> bytes:
        """BODY[HEADER.FIELDS (names)] (or .NOT).  A mail client asks every message for the same
        few fields at each sync, so the last subset asked of a message, if small, stays in its
        cache: one slot, so a message keeps at most `SUBSET_CACHED` octets of it."""
        cache = self.m.cache
        kept = cache.get("fields")
        if kept is not None and kept[0] == names and kept[1] == exclude:
            return kept[2]                                          # type: ignore[no-any-return]
        value = mime.header_subset(self.header(), names, exclude)
        if len(value) <= SUBSET_CACHED:
            cache["fields"] = (names, exclude, value)
        return value

    def envelope(self) -> list[Part]:
        cache = self.m.cache
        env = cache.get("envelope")
        if env is None:
            env = cache["envelope"] = envelope(self.fields())
        return env

    def structure(self, extended: bool) -> list[Part]:
        key = "bodystructure" if extended else "body"
        cache = self.m.cache
        value = cache.get(key)
        if value is None:
            value = cache[key] = mime.structure(self.full(), self.tree(), extended)
        return value


SUBSET_CACHED = 1024


def body_section(data: MessageData, item: FetchItem) -> bytes | None:
    """The octets of BODY[section]<partial>, RFC822, RFC822.HEADER or RFC822.TEXT."""
    sec = item.section
    if item.name == "RFC822":
        value: bytes | None = data.full()
    elif item.name == "RFC822.HEADER":
        value = data.header()
    elif item.name == "RFC822.TEXT":
        full = data.full()
        value = full[mime.header_end(full, 0, len(full)):]
    elif sec is None or (not sec.part and sec.text == ""):
        value = data.full()
    elif not sec.part and sec.text == "HEADER":
        value = data.header()
    elif not sec.part and sec.text.startswith("HEADER.FIELDS"):
        value = data.header_subset(sec.fields, sec.text == "HEADER.FIELDS.NOT")
    else:
        value = mime.section(data.full(), data.tree(), sec)
    if value is not None and item.partial is not None:
        start, length = item.partial
        value = value[start:start + length]
    return value


def render(data: MessageData, items: Iterable[FetchItem], extra_flags: bool = False,
           modseq: bool = False) -> list[Part]:
    """`* seq FETCH (...)` for one message; `extra_flags`/`modseq` append FLAGS/MODSEQ if not asked."""
    m = data.m
    parts: list[Part] = [f"* {data.seq} FETCH ("]
    first = True
    asked: set[str] = set()
    for item in items:
        if not first:
            parts.append(" ")
        first = False
        name = item.name
        asked.add(name)
        if name == "FLAGS":
            parts.append("FLAGS " + flags_text(m.flags, data.recent))
        elif name == "UID":
            parts.append(f"UID {m.uid}")
        elif name == "RFC822.SIZE":
            parts.append(f"RFC822.SIZE {m.size}")
        elif name == "INTERNALDATE":
            parts.append(f'INTERNALDATE "{internaldate(m.internaldate)}"')
        elif name == "MODSEQ":
            parts.append(f"MODSEQ ({m.modseq})")
        elif name == "ENVELOPE":
            parts.append("ENVELOPE ")
            parts += data.envelope()
        elif name == "BODYSTRUCTURE":
            parts.append("BODYSTRUCTURE ")
            parts += data.structure(True)
        elif name == "BODY":
            parts.append("BODY ")
            parts += data.structure(False)
        else:                                   # BODY[...], RFC822, RFC822.HEADER, RFC822.TEXT
            value = body_section(data, item)
            parts.append(item.label + " ")
            parts.append("NIL" if value is None else value if value else '""')
    if extra_flags and "FLAGS" not in asked:
        parts.append(" FLAGS " + flags_text(m.flags, data.recent))
    if modseq and "MODSEQ" not in asked:
        parts.append(f" MODSEQ ({m.modseq})")
    parts.append(")")
    return parts
