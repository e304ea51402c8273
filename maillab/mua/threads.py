"""Conversations: messages put into threads by their References and In-Reply-To (RFC 5256 §2.2, JWZ).

`Links.of(header)` takes what threading needs from a message's header fields:
its Message-ID and the ids it answers (References, then In-Reply-To if it
adds one, RFC 5322 §3.6.4).  `thread(messages)` files each message under
the message it answers — a parent known only from a child's References
stands in as an empty place, so two replies to a message this folder lacks
still hang together — and gives the list's order: (uid, depth) pairs,
threads newest first (by their newest message), each thread depth first
with replies oldest first.  A loop in the references (a message that would
become its own ancestor) is cut where it would close; duplicate Message-IDs
keep the first message under that id, the rest stand alone.  Empty places
show no row: their children take their depth.

Pure data in, data out: the Mail screen lays its list out with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

_MSG_ID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True, slots=True)
class Links:
    message_id: str                 # "" when the message has none (or an unusable one)
    answers: tuple[str, ...]        # oldest ancestor first, the direct parent last

    @classmethod
    def of(cls, message_id: str, references: str, in_reply_to: str) -> "Links":
        own = _MSG_ID.findall(message_id)
        refs = _MSG_ID.findall(references)
        replied = _MSG_ID.findall(in_reply_to)
        if replied and (not refs or refs[-1] != replied[0]):
            refs.append(replied[0])
        mine = own[0] if own else ""
        return cls(mine, tuple(r for r in dict.fromkeys(refs) if r != mine))


@dataclass(slots=True)
class _Place:
    uid: int | None = None
    parent: "_Place | None" = None
    children: list["_Place"] = field(default_factory=list)
    newest: int = -1
    oldest: int = -1

    def is_above(self, other: "_Place") -> bool:
        """Is self `other` or one of its ancestors?"""
        p: _Place | None = other
        while p is not None:
            if p is self:
                return True
            p = p.parent
        return False


def _link(parent: _Place, child: _Place) -> None:
    if child.parent is parent or child.is_above(parent):
        return                      # already there, or a loop
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def thread(messages: Iterable[tuple[int, Links]]) -> list[tuple[int, int]]:
    places: dict[str, _Place] = {}
    alone: list[_Place] = []
    for uid, links in messages:
        own = places.get(links.message_id) if links.message_id else None
        if own is None or own.uid is not None:
            own = _Place()
            if links.message_id and links.message_id not in places:
                places[links.message_id] = own
            else:
                alone.append(own)
        own.uid = uid
        above: _Place | None = None
        for ref in links.answers:
            place = places.setdefault(ref, _Place())
            if above is not None and place.parent is None:
                _link(above, place)     # a chain the earlier messages did not already say
            above = place
        if above is not None:
            if own.parent is not None and own.parent is not above:
                own.parent.children.remove(own)
                own.parent = None
            _link(above, own)
    roots = [p for p in (*places.values(), *alone) if p.parent is None]
    for root in roots:
        _newest(root)
    out: list[tuple[int, int]] = []
    for root in sorted((r for r in roots if r.newest >= 0), key=lambda r: r.newest, reverse=True):
        _walk(root, 0, out)
    return out


def _newest(place: _Place) -> int:
    """Each place's newest and oldest message below it; replies ordered by when they came."""
    stack, order = [place], []
    while stack:                    # iterative: a 10,000-message chain is no recursion limit
        p = stack.pop()
        order.append(p)
        stack.extend(p.children)
    for p in reversed(order):
        own = [p.uid] if p.uid is not None else []
        p.newest = max([*own, *(c.newest for c in p.children)], default=-1)
        p.oldest = min([*own, *(c.oldest for c in p.children if c.oldest >= 0)], default=-1)
        p.children.sort(key=lambda c: c.oldest)
    return place.newest


def _walk(root: _Place, depth: int, out: list[tuple[int, int]]) -> None:
    stack = [(root, depth)]
    while stack:
        place, d = stack.pop()
        if place.uid is not None:
            out.append((place.uid, d))
            d += 1
        stack.extend((c, d) for c in reversed(place.children))
