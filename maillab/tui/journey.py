"""A message's journey: its Received headers as hops, and the lab's own record of each queue ID.

`hops(header_bytes)` reads the Received trace fields of a message (RFC 5321
§4.4) and returns them oldest first as `Hop`s: who handed the message to whom
(HELO name, PTR name, IP), with which protocol (RFC 3848: ESMTPS means TLS,
ESMTPA a login), under which queue ID, and how long after the previous hop.

`JourneyIndex` keeps, from the event stream, what the lab saw happen to each
queue ID (queued, each try at each MX — `attempt_line`, ✗ failed, ✓ taken —,
deferred, delivered, notices), which SMTP sessions carried it (the one that
handed it over, from its Queued event, and the one that sent it on, from the
MxTried that names the next host's queue ID), the recent DNS queries, and the
recent final deliveries a user can pick.  Everything is bounded.  No Textual here.

What happened before the TUI started is in the maillog: `maillab.lab.maillog_read`
reads those lines back as the same events, and `JourneyIndex.from_events`
folds them into an index of their own, so one set of rows (`_describe`)
serves both the live record and the maillog's.  A live record is `complete`
when it saw the queue ID being queued; `add_past` puts the maillog's earlier
deliveries before the live ones.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime

from ..base.events import (Bounced, Deferred, Delivered, DnsQuery, Event, MxTried, Notice, Queued,
                           QueueMoved, Removed)

MAX_MESSAGES = 5_000
MAX_EVENTS = 40
MAX_DNS = 5_000
MAX_DELIVERIES = 500

_FROM = re.compile(r"\bfrom\s+(\S+)(?:\s+\(([^)]*)\))?", re.I)
_BY = re.compile(r"\bby\s+(\S+)", re.I)
_WITH = re.compile(r"\bwith\s+(\S+)", re.I)
_ID = re.compile(r"\bid\s+([^\s;]+)", re.I)
_FOR = re.compile(r"\bfor\s+<?([^\s>;]+)>?", re.I)
_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f.:]+)\]")
_COMMENT = re.compile(r"\([^()]*\)")   # innermost first: "(using TLSv1.3 with cipher X (256/256 bits))"


@dataclass(frozen=True, slots=True)
class Hop:
    by: str                   # the host that stamped this header
    helo: str = ""            # what the client said in HELO/EHLO
    client_name: str = ""     # the client's PTR name, as the receiver looked it up
    client_ip: str = ""
    protocol: str = ""        # "SMTP", "ESMTP", "ESMTPS", "ESMTPSA", ...
    queue_id: str = ""
    recipient: str = ""
    date: float | None = None
    delay: float | None = None   # seconds since the previous hop's date

    @property
    def tls(self) -> bool:
        """RFC 3848: the "S" of ESMTPS / ESMTPSA (and UTF8SMTPS...) means TLS."""
        return self.protocol.upper().endswith(("SMTPS", "SMTPSA"))

    @property
    def authenticated(self) -> bool:
        return self.protocol.upper().endswith(("SMTPA", "SMTPSA"))


def parse_received(value: str) -> Hop:
    """One Received field's value (unfolded or not) as a `Hop` (delay not set)."""
    text = " ".join(value.split())
    clauses, _, date_text = text.rpartition(";")
    if not clauses:
        clauses, date_text = text, ""
    date = None
    if date_text.strip():
        try:
            date = parsedate_to_datetime(date_text.strip()).timestamp()
        except (TypeError, ValueError, IndexError):
            date = None
    helo = name = ip = ""
    m = _FROM.search(clauses)
    if m:
        helo = m.group(1)
        comment = m.group(2) or ""
        ipm = _IP.search(comment)
        ip = ipm.group(1) if ipm else ""
        name = comment[:ipm.start()].strip() if ipm else comment.strip()
    clauses = _uncommented(clauses[m.end():] if m else clauses)     # "with cipher" of a TLS comment is no protocol
    by = _BY.search(clauses)
    proto = _WITH.search(clauses)
    qid = _ID.search(clauses)
    rcpt = _FOR.search(clauses)
    return Hop(by=by.group(1) if by else "", helo=helo, client_name=name, client_ip=ip,
               protocol=proto.group(1) if proto else "", queue_id=qid.group(1) if qid else "",
               recipient=rcpt.group(1) if rcpt else "", date=date)


def _uncommented(text: str) -> str:
    while (bare := _COMMENT.sub(" ", text)) != text:
        text = bare
    return text


def hops(header: bytes) -> list[Hop]:
    """The Received headers of a message, oldest hop first, each with its delay."""
    msg = BytesHeaderParser(policy=compat32).parsebytes(header)
    found = [parse_received(str(v)) for v in reversed(msg.get_all("Received") or [])]
    out: list[Hop] = []
    previous: float | None = None
    for hop in found:
        delay = hop.date - previous if hop.date is not None and previous is not None else None
        out.append(Hop(hop.by, hop.helo, hop.client_name, hop.client_ip, hop.protocol, hop.queue_id,
                       hop.recipient, hop.date, delay))
        previous = hop.date if hop.date is not None else previous
    return out


@dataclass(slots=True)
class QueueRecord:
    """What the lab saw of one queue ID."""
    host: str = ""
    first: float = 0.0
    last: float = 0.0
    events: list[tuple[float, str]] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)     # sessions that handed it over, or sent it on
    queued: bool = False                                  # saw it queued: the record starts at the start
    tried: bool = False                                   # saw its MX tries (MxTried)


def attempt_line(mx: str, address: str, result: str, reason: str) -> str:
    """One try at one MX, e.g. "✗ smtp1.syr.edu[127.0.0.1]:25 refused: Connection refused"."""
    ip, _, port = address.rpartition(":")
    where = f"{mx}[{ip}]:{port}" if address else mx
    return f"{'✓' if result == 'delivered' else '✗'} {where} {result}: {reason}"


def _describe(e: Event) -> str | None:
    if isinstance(e, Queued):
        return (f"queued at {e.host}: from <{e.sender}> to {', '.join(e.recipients)}, {e.size} bytes"
                + (f", client {e.client}" if e.client else ""))
    if isinstance(e, MxTried):
        return f"{e.host}: {attempt_line(e.mx, e.address, e.result, e.reason)}"
    if isinstance(e, QueueMoved):
        return f"{e.host}: now in the {e.queue} queue"
    if isinstance(e, Delivered):
        return f"{e.host}: sent to <{e.recipient}> via {e.relay} ({e.dsn} {e.detail})"
    if isinstance(e, Deferred):
        return f"{e.host}: deferred <{e.recipient}> via {e.relay} ({e.dsn} {e.detail})"
    if isinstance(e, Bounced):
        return f"{e.host}: bounced <{e.recipient}> ({e.dsn} {e.detail})"
    if isinstance(e, Removed):
        return f"{e.host}: removed from the queue"
    if isinstance(e, Notice):
        return f"{e.host} {e.program}: {e.text}"
    return None


class JourneyIndex:
    def __init__(self, addresses: dict[str, str], max_messages: int = MAX_MESSAGES,
                 max_events: int = MAX_EVENTS, max_dns: int = MAX_DNS,
                 max_deliveries: int = MAX_DELIVERIES) -> None:
        self.addresses = addresses                 # host name -> its loopback address
        self.records: OrderedDict[str, QueueRecord] = OrderedDict()
        self.dns: deque[DnsQuery] = deque(maxlen=max_dns)
        self.deliveries: deque[Delivered] = deque(maxlen=max_deliveries)
        self._max_messages = max_messages
        self._max_events = max_events

    def _record(self, qid: str, when: float) -> QueueRecord:
        r = self.records.get(qid)
        if r is None:
            r = self.records[qid] = QueueRecord(first=when)
            if len(self.records) > self._max_messages:
                self.records.popitem(last=False)
        return r

    def ingest(self, events: list[Event]) -> int:
        """Fold events in; returns how many final deliveries arrived."""
        delivered = 0
        for e in events:
            if isinstance(e, Queued) and e.session:                  # the session that handed it over
                self._record(e.queue_id, e.time).sessions.append(e.session)
            elif isinstance(e, MxTried) and e.peer_queue_id and e.session:   # ... and the one that sent it
                self._record(e.peer_queue_id, e.time).sessions.append(e.session)
            if isinstance(e, DnsQuery):
                self.dns.append(e)
                continue
            qid = getattr(e, "queue_id", "")
            text = _describe(e) if qid else None
            if text is None:
                continue
            r = self._record(qid, e.time)
            if isinstance(e, Notice) and e.program == "smtp" and r.tried:
                continue        # routing's maillog line for a failed try: its MxTried row says it
            r.tried = r.tried or isinstance(e, MxTried)
            r.host = r.host or getattr(e, "host", "")
            r.last = e.time
            r.queued = r.queued or isinstance(e, Queued)
            if len(r.events) < self._max_events:
                r.events.append((e.time, text))
            if isinstance(e, Delivered) and e.relay == "local":
                self.deliveries.append(e)
                delivered += 1
        return delivered

    @classmethod
    def from_events(cls, addresses: dict[str, str], events: list[Event]) -> "JourneyIndex":
        """An index of these events alone (oldest first), e.g. the maillog's lines read back."""
        index = cls(addresses)
        index.ingest(events)
        return index

    def complete(self, qid: str) -> bool:
        """Whether the live record of `qid` goes back to its queueing (else: missing, or it
        began before the TUI did, or it was forgotten)."""
        record = self.records.get(qid)
        return record is not None and record.queued

    def delivery(self, qid: str, recipient: str) -> Delivered:
        """The final delivery of `qid` to `recipient` among the recent ones (the newest if
        several); a bare one (where it went unknown) if it is not there any more."""
        for d in reversed(self.deliveries):
            if d.queue_id == qid and d.recipient == recipient:
                return d
        return Delivered(0.0, "", qid, recipient, "local", 0.0, "", "")

    def add_past(self, deliveries: list[Delivered]) -> int:
        """Put earlier final deliveries (oldest first, e.g. from the maillog) before the ones
        seen live, as many as there is room for; returns how many were added."""
        known = {(d.queue_id, d.recipient) for d in self.deliveries}
        older = [d for d in deliveries if (d.queue_id, d.recipient) not in known]
        room = (self.deliveries.maxlen or 0) - len(self.deliveries)
        older = older[-room:] if room > 0 else []
        self.deliveries.extendleft(reversed(older))
        return len(older)

    def dns_for(self, host: str, start: float, end: float) -> list[DnsQuery]:
        """DNS queries `host` made between `start` and `end` (lab time)."""
        ip = self.addresses.get(host)
        if ip is None:
            return []
        return [q for q in self.dns if start <= q.time <= end and q.client.rpartition(":")[0] == ip]
