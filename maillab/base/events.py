"""The lab's typed events and the in-process bus that carries them.

Every part of the engine reports what it does as a small frozen dataclass
published on one `EventBus`: a line of an SMTP dialogue, a DNS query, a
message queued, a delivery attempt, a delivery, a bounce.  The maillog writer
and (later) the TUI subscribe to the same stream.

Invariants: publishing never blocks and never fails; each subscription keeps
at most `maxlen` events (the oldest are dropped and counted), so a flood can
not grow memory without bound.  Events carry lab-clock times (`time.time()`
scale, seconds since the epoch).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Literal

Direction = Literal["client", "server", "note"]


@dataclass(frozen=True, slots=True)
class Event:
    time: float


@dataclass(frozen=True, slots=True)
class SessionOpened(Event):
    session: str          # unique id, e.g. "smtp1.syr.edu/smtp/17"
    protocol: str         # "smtp", "submission", "smtp-out", ...
    host: str             # the lab host that serves (or, outbound, sends)
    peer: str             # "ip:port" of the other end
    peer_name: str = ""   # PTR name of the peer, when known


@dataclass(frozen=True, slots=True)
class SessionLine(Event):
    session: str
    host: str
    direction: Direction  # who spoke: "client", "server"; "note": the lab's own remark
    text: str             # one line, without its line ending


@dataclass(frozen=True, slots=True)
class SessionClosed(Event):
    session: str
    host: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DnsQuery(Event):
    client: str           # "ip:port"
    transport: str        # "udp" or "tcp"
    name: str
    rdtype: str
    rcode: str
    answers: int


@dataclass(frozen=True, slots=True)
class Connected(Event):
    host: str
    queue_id: str
    client_name: str
    client_ip: str


@dataclass(frozen=True, slots=True)
class Queued(Event):
    host: str
    queue_id: str
    sender: str
    recipients: tuple[str, ...]
    size: int
    client: str = ""
    session: str = ""     # the SMTP session that handed it over ("" for a notice the lab made)


@dataclass(frozen=True, slots=True)
class Delivered(Event):
    """One recipient reached its final step at this host (sent on, stored).  A local delivery
    says where the copy went (mailbox, UID, file), so no view has to look for it."""
    host: str
    queue_id: str
    recipient: str
    relay: str            # "local" or "mx.gmail.com[127.0.0.4]:2525"
    delay: float
    dsn: str              # enhanced status, "2.0.0"
    detail: str
    mailbox: str = ""     # local: the mailbox ("INBOX") of `account`
    uid: int | None = None    # local: its UID there (None: indexing failed, a refresh finds it)
    path: str = ""        # local: the file as delivered (a flag change renames it)
    account: str = ""     # local: the mailbox owner (an alias's recipient differs)


@dataclass(frozen=True, slots=True)
class Deferred(Event):
    host: str
    queue_id: str
    recipient: str
    relay: str
    delay: float
    dsn: str
    detail: str


@dataclass(frozen=True, slots=True)
class Bounced(Event):
    host: str
    queue_id: str
    recipient: str
    relay: str
    delay: float
    dsn: str
    detail: str
    notice_id: str = ""   # queue id of the DSN sent back, "" if none (null sender)


@dataclass(frozen=True, slots=True)
class MxTried(Event):
    """One try of one queued message at one MX address, whatever came of it."""
    host: str             # the sending host
    queue_id: str
    mx: str               # "smtp1.syr.edu"
    address: str          # "127.0.0.1:25"; "" when the MX name did not resolve
    result: str           # "delivered", "deferred", "bounced" or "refused"
    reason: str
    session: str = ""     # the smtp-out session of the try, "" when there was none (no address)
    peer_queue_id: str = ""   # the next host's queue ID ("250 2.0.0 Ok: queued as ..."), "" if none
    tls: str = ""         # "Verified TLS, TLSv1.3 with cipher ... (256/256 bits)"; "" in plaintext


@dataclass(frozen=True, slots=True)
class CheckVerdict(Event):
    """A check of the SMTP receive path said something other than a plain accept
    (`smtp.checkpoints`): which check, at which checkpoint, what and why."""
    host: str
    session: str
    stage: str            # "connect", "helo", "mail", "rcpt" or "data"
    check: str            # the check's name ("relay", "greylist", ...)
    action: str           # "tag", "reject" or "quarantine"
    reason: str
    reply: str = ""       # a reject's reply line ("554 5.7.1 <x@y>: Relay access denied")
    client: str = ""      # "name[ip]"


@dataclass(frozen=True, slots=True)
class TlsEstablished(Event):
    """A server session's TLS handshake finished (STARTTLS, or TLS on connect): what it is."""
    session: str
    host: str
    protocol: str         # "TLSv1.3"
    cipher: str           # "TLS_AES_256_GCM_SHA384"
    bits: int             # the cipher's secret bits, 256
    implicit: bool        # TLS on connect (2465, 1993, 1995), not STARTTLS/STLS


@dataclass(frozen=True, slots=True)
class WireData(Event):
    """Octets of a server session that crossed the wire in plaintext (before TLS), as read or
    written: what an eavesdropper reads, passwords and all (the first `net.wiretap.KEEP` of them)."""
    session: str
    host: str
    direction: Literal["client", "server"]     # who sent them
    data: bytes


@dataclass(frozen=True, slots=True)
class WireTotals(Event):
    """A server session's octets, each way, at its end: in plaintext, and inside TLS (application
    data after the handshake, as the session read and wrote it; the ciphertext is a little more)."""
    session: str
    host: str
    plain_client: int
    plain_server: int
    tls_client: int
    tls_server: int


@dataclass(frozen=True, slots=True)
class QueueMoved(Event):
    """A message changed queue: incoming, active, deferred or hold."""
    host: str
    queue_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class HostChanged(Event):
    """A host went down or came up, or its chaos setting changed."""
    host: str
    state: str            # "up", "down (refuse)", "down (421)", ...
    chaos: str = ""


@dataclass(frozen=True, slots=True)
class Removed(Event):
    host: str
    queue_id: str


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """A line for the maillog that belongs to no other kind: start, stop, warnings."""
    host: str
    program: str
    text: str
    queue_id: str = ""


# The mail store's changes (maillab/store), published after each commit to disk.
# `user` is the account address, `mailbox` the IMAP name (modified UTF-7).

@dataclass(frozen=True, slots=True)
class MessagesAdded(Event):
    """New messages: delivery, APPEND, COPY/MOVE into the mailbox, or files found on disk."""
    user: str
    mailbox: str
    uids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FlagsChanged(Event):
    """Flags of these messages changed; read the new ones from the store."""
    user: str
    mailbox: str
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class MessagesExpunged(Event):
    user: str
    mailbox: str
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class MailboxCreated(Event):
    user: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class MailboxDeleted(Event):
    user: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class MailboxRenamed(Event):
    user: str
    mailbox: str          # the old name
    new_name: str


class Subscription:
    """A bounded queue of events for one consumer."""

    def __init__(self, bus: "EventBus", maxlen: int, accept: Callable[[Event], bool] | None) -> None:
        self._bus = bus
        self._items: deque[Event] = deque(maxlen=maxlen)
        self._accept = accept
        self._wakeup = asyncio.Event()
        self.dropped = 0

    def _push(self, event: Event) -> None:
        if self._accept is not None and not self._accept(event):
            return
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(event)
        self._wakeup.set()

    def drain(self) -> list[Event]:
        """Everything queued so far, oldest first; empties the queue."""
        items = list(self._items)
        self._items.clear()
        self._wakeup.clear()
        return items

    async def next_batch(self) -> list[Event]:
        """Wait until at least one event is queued, then drain."""
        while not self._items:
            await self._wakeup.wait()
            self._wakeup.clear()
        return self.drain()

    def close(self) -> None:
        self._bus._unsubscribe(self)


@dataclass
class EventBus:
    """Fan-out of events to bounded subscriptions; loop-thread only.

    A subscription may name the event types it wants (`kinds`): an event is
    then offered only to the subscriptions that want its type (the list per
    type is worked out once, and again after each subscribe or close).
    """

    _subs: dict[Subscription, tuple[type[Event], ...] | None] = field(default_factory=dict)
    _routes: dict[type, tuple[Subscription, ...]] = field(default_factory=dict)

    def publish(self, event: Event) -> None:
        subs = self._routes.get(type(event))
        if subs is None:
            subs = self._routes[type(event)] = tuple(
                sub for sub, kinds in self._subs.items() if kinds is None or isinstance(event, kinds))
        for sub in subs:
            sub._push(event)

    def subscribe(self, maxlen: int = 10_000, accept: Callable[[Event], bool] | None = None,
                  kinds: tuple[type[Event], ...] | None = None) -> Subscription:
        """A new subscription to every event (or those of `kinds`) that `accept` takes."""
        sub = Subscription(self, maxlen, accept)
        self._subs[sub] = kinds
        self._routes.clear()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            del self._subs[sub]
            self._routes.clear()
