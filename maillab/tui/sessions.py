"""The Dialogues panel's memory: recent sessions and their transcripts, bounded.

`SessionBook.ingest(events)` folds `SessionOpened` / `SessionLine` /
`SessionClosed` events into `Session` records and reports what changed, so
the panel redraws only that.  Lines are explained only when shown
(`Session.explain()`): an `Explainer` per session walks its lines in order
(AUTH exchanges need the order), so turning "explain" on annotates the past
lines too, and a flood of sessions nobody looks at costs no explaining.

The wire an eavesdropper saw is kept beside the transcript: the session's plaintext
`WireData` (the server publishes at most `net.wiretap.KEEP` octets of it), its TLS version
(`TlsEstablished`) and its `WireTotals`; `Session.wire_view()` makes the eavesdropper's lines.

Bounds: at most `max_sessions` sessions (the oldest are forgotten, closed ones
first) and `max_lines` lines per session (the oldest dropped and counted).
A line of a session the book never saw open (the TUI started mid-session, or
it was forgotten) opens a record for it.  No Textual here.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ..base.events import Event, SessionClosed, SessionLine, SessionOpened, TlsEstablished, WireData, WireTotals
from .eavesdrop import WireLine, wire_view
from .explain import Explainer, Note

Line = SessionLine            # a transcript line: .time, .direction ("client", "server", "note"), .text

MAX_SESSIONS = 500
MAX_LINES = 1_000


@dataclass(slots=True)
class Session:
    id: str
    protocol: str
    host: str
    client: str               # "name [ip]" or "ip:port"
    started: float
    state: str = "open"       # "open", "closed", "lost: ..."
    lines: deque[Line] = field(default_factory=deque)      # the events themselves: no copy per line
    notes: deque[tuple[Note, ...]] = field(default_factory=deque)   # notes[i] explains lines[i]
    dropped: int = 0
    explained: int = 0        # lines explained so far (of dropped + len(lines))
    explainer: Explainer | None = None
    wire: list[tuple[str, bytes]] = field(default_factory=list)    # plaintext on the wire: (side, octets)
    tls: str = ""             # "TLS 1.3", once its handshake is done
    totals: WireTotals | None = None    # octets each way, once it has ended

    @property
    def open(self) -> bool:
        return self.state == "open"

    def wire_view(self) -> list[WireLine]:
        """What an eavesdropper on the wire read of this session (eavesdrop.py)."""
        return wire_view(self.protocol, self.wire, self.tls, self.totals)

    def explain(self) -> None:
        """Explain the lines added since the last call, so `notes` lines up with `lines`."""
        if self.explainer is None:
            self.explainer = Explainer(self.protocol)
        added = self.dropped + len(self.lines)
        todo = min(added - self.explained, len(self.lines))
        for line in itertools.islice(self.lines, len(self.lines) - todo, None):
            self.notes.append(tuple(self.explainer.feed(line.direction, line.text)))
        self.explained = added


@dataclass(slots=True)
class Changes:
    """What one `ingest` call changed."""
    opened: list[str] = field(default_factory=list)       # new session ids, in order
    updated: set[str] = field(default_factory=set)        # state changed (closed)
    lines: dict[str, list[Line]] = field(default_factory=dict)   # new lines per session
    forgotten: list[str] = field(default_factory=list)
    wire: set[str] = field(default_factory=set)           # sessions whose wire view changed

    def __bool__(self) -> bool:
        return bool(self.opened or self.updated or self.lines or self.forgotten or self.wire)


def _protocol_of(session_id: str) -> str:
    """"smtp1.syr.edu/smtp/17" -> "smtp"."""
    parts = session_id.split("/")
    return parts[1] if len(parts) >= 3 else "?"


class SessionBook:
    def __init__(self, max_sessions: int = MAX_SESSIONS, max_lines: int = MAX_LINES) -> None:
        self.max_sessions = max_sessions
        self.max_lines = max_lines
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.total_opened = 0
        self._newest: Session | None = None

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def clear(self) -> None:
        self.sessions.clear()
        self._newest = None

    def newest(self) -> Session | None:
        """The session that began last (its SessionOpened may come after a later one's: a server
        looks up the client's name before it says so); of two at once, the one heard of last.
        Kept as sessions open, looked for again only when it is forgotten."""
        return self._newest

    def _open(self, sid: str, protocol: str, host: str, client: str, when: float,
              changes: Changes) -> Session:
        s = Session(sid, protocol, host, client, when, lines=deque(maxlen=self.max_lines),
                    notes=deque(maxlen=self.max_lines))
        self.sessions[sid] = s
        self.total_opened += 1
        if self._newest is None or when >= self._newest.started:
            self._newest = s
        changes.opened.append(sid)
        if len(self.sessions) > self.max_sessions:
            self._forget_one(changes)
        return s

    def _forget_one(self, changes: Changes) -> None:
        victim = next((sid for sid, s in self.sessions.items() if not s.open), None)
        if victim is None:
            victim = next(iter(self.sessions))
        gone = self.sessions.pop(victim)
        if gone is self._newest:
            self._newest = max(reversed(self.sessions.values()), key=lambda s: s.started, default=None)
        changes.forgotten.append(victim)
        if victim in changes.opened:
            changes.opened.remove(victim)
        changes.updated.discard(victim)
        changes.lines.pop(victim, None)
        changes.wire.discard(victim)

    def ingest(self, events: list[Event]) -> Changes:
        changes = Changes()
        for e in events:
            if isinstance(e, SessionLine):
                s = self.sessions.get(e.session)
                if s is None:
                    s = self._open(e.session, _protocol_of(e.session), e.host, "?", e.time, changes)
                if len(s.lines) == s.lines.maxlen:
                    s.dropped += 1
                s.lines.append(e)
                changes.lines.setdefault(s.id, []).append(e)
            elif isinstance(e, SessionOpened):
                ip = e.peer.rpartition(":")[0] or e.peer
                client = f"{e.peer_name} [{ip}]" if e.peer_name and e.peer_name != "unknown" else e.peer
                s = self.sessions.get(e.session)
                if s is None:
                    self._open(e.session, e.protocol, e.host, client, e.time, changes)
                else:     # a line came first: complete the record
                    s.protocol, s.client = e.protocol, client
                    changes.updated.add(s.id)
            elif isinstance(e, (WireData, WireTotals, TlsEstablished)):
                s = self.sessions.get(e.session)
                if s is None:
                    continue
                if isinstance(e, WireData):
                    s.wire.append((e.direction, e.data))
                elif isinstance(e, WireTotals):
                    s.totals = e
                else:
                    s.tls = e.protocol.replace("TLSv", "TLS ")
                changes.wire.add(s.id)
            elif isinstance(e, SessionClosed):
                s = self.sessions.get(e.session)
                if s is not None:
                    s.state = e.reason if e.reason and e.reason != "closed" else "closed"
                    if s.id not in changes.opened:
                        changes.updated.add(s.id)
        return changes
