"""The MUA's IMAP client on asyncio: `imap_protocol.ImapClientConnection` over a socket.

`ImapClient.connect` opens the connection in the TLS way asked (`plain`,
`starttls`: STARTTLS before anything else, `tls`: TLS from the first octet),
verifying the server against the context given; then `login`, `folders`,
`status`, `select`, `uids`, `summaries` (a page of the message list: UID,
FLAGS, size, the header fields a list shows), `message` (BODY.PEEK[]: reading
does not set \\Seen until the client says so), `store`, `move`, `expunge`,
`append` (APPENDUID's UID back) and `idle`, which waits for the server's news
(EXISTS, EXPUNGE, FETCH) until told to stop.  Commands run one at a time (a
lock).  Every line both ways goes to `on_line(direction, text)` as it happens
("out", "in", "note": the X-ray), secrets masked by the protocol.

What the commands mean, and what the server's answers mean, is the sans-IO
connection's; this module only moves its octets and waits.  Every read and
write has a time-out; a NO or BAD, a lost connection or a time-out is an
`ImapError` with the server's words or the reason.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Callable, Literal as Kind, Sequence

from ..base.errors import network_reason
from ..base.events import Direction
from ..base.sansio import NEED_DATA, Closed, StartTls
from ..imap.messages import uid_set
from .imap_protocol import (
    Completed, Continuation, Event, Exists, Expunge, Fetch, ImapClientConnection, ListItem, Search, StatusItems,
    Untagged)

LineSink = Callable[[str, str], None]
TlsWay = Kind["plain", "starttls", "tls"]
News = Exists | Expunge | Fetch
LIST_FIELDS = "FROM TO SUBJECT DATE MESSAGE-ID IN-REPLY-TO REFERENCES RECEIVED AUTHENTICATION-RESULTS"
READ = 65536
IDLE_RENEW = 25 * 60.0            # RFC 2177 §3: re-issue IDLE at least every 29 minutes
_SHOWN: dict[Direction, str] = {"client": "out", "server": "in", "note": "note"}


class ImapError(Exception):
    """A refusal (NO/BAD) or a broken connection; str() is one line for the user."""


@dataclass(frozen=True, slots=True)
class Folder:
    name: str
    flags: tuple[str, ...]

    @property
    def selectable(self) -> bool:
        return "\\noselect" not in {f.lower() for f in self.flags}


@dataclass(frozen=True, slots=True)
class Selected:
    name: str
    exists: int
    uidvalidity: int
    uidnext: int


@dataclass(frozen=True, slots=True)
class Summary:
    """One row of the message list."""
    uid: int
    flags: tuple[str, ...]
    size: int
    header: bytes                  # the LIST_FIELDS header fields

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags

    def fields(self) -> dict[str, str]:
        """The header fields, decoded (RFC 2047), each on one line; the first of a name counts."""
        parsed = BytesHeaderParser(policy=compat32).parsebytes(self.header)   # 20x faster than `default`
        out: dict[str, str] = {}
        for name, value in parsed.items():
            if name.lower() in out:
                continue
            try:
                value = str(make_header(decode_header(value)))
            except (ValueError, LookupError):
                pass                                  # a broken encoded word: shown as it came
            out[name.lower()] = " ".join(str(value).split())
        return out


class ImapClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, where: str,
                 timeout: float, on_line: LineSink | None) -> None:
        self.reader, self.writer = reader, writer
        self.where = where
        self.timeout = timeout
        self.on_line = on_line
        self.conn = ImapClientConnection(tag_prefix="M")
        self.news: list[News] = []               # EXISTS/EXPUNGE (and FETCH while idling) not yet looked at
        self._tls: tuple[ssl.SSLContext | None, str] = (None, "")
        self._lock = asyncio.Lock()

    @property
    def capabilities(self) -> frozenset[str]:
        return self.conn.capabilities

    # --- opening and closing -------------------------------------------------------------
    @classmethod
    async def connect(cls, address: str, port: int, *, tls: TlsWay, context: ssl.SSLContext | None,
                      server_hostname: str, timeout: float = 30.0,
                      on_line: LineSink | None = None) -> "ImapClient":
        if on_line is not None:
            on_line("note", f"connecting to {server_hostname} [{address}]:{port}"
                    + (" with TLS" if tls == "tls" else ""))
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=context if tls == "tls" else None,
                    server_hostname=server_hostname if tls == "tls" else None)
        except (OSError, ssl.SSLError, TimeoutError) as e:
            raise ImapError(f"cannot connect to {server_hostname}:{port}: {network_reason(e)}") from None
        client = cls(reader, writer, where=server_hostname, timeout=timeout, on_line=on_line)
        client._tls = (context, server_hostname)
        try:
            greeting = await client._event()
            if getattr(greeting, "status", "") not in ("OK", "PREAUTH"):
                raise ImapError(f"{server_hostname} refused the connection: {getattr(greeting, 'text', '')}")
            if tls == "starttls":
                await client.run(client.conn.starttls)
                await client.run(client.conn.capability)
        except BaseException:
            await client.close()
            raise
        return client

    async def close(self) -> None:
        self._publish()
        self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass

    async def logout(self) -> None:
        try:
            if not self.conn.closed:
                await self.run(self.conn.logout)
        except ImapError:
            pass
        await self.close()

    # --- commands ---------------------------------------------------------------------------
    async def login(self, user: str, password: str) -> None:
        await self.run(lambda: self.conn.login(user, password))
        if "IMAP4REV1" not in self.capabilities:
            await self.run(self.conn.capability)

    async def folders(self) -> list[Folder]:
        return [Folder(e.name, e.flags) for e in await self.run(self.conn.list_) if isinstance(e, ListItem)]

    async def status(self, folder: str) -> dict[str, int]:
        got = await self.run(lambda: self.conn.status(folder))
        return next((e.items for e in got if isinstance(e, StatusItems)), {})

    async def select(self, folder: str) -> Selected:
        exists, codes = 0, {"UIDVALIDITY": 0, "UIDNEXT": 0}
        for e in await self.run(lambda: self.conn.select(folder)):
            if isinstance(e, Exists):
                exists = e.count
            elif isinstance(e, Untagged) and e.code is not None and e.code.name in codes:
                codes[e.code.name] = int(e.code.value)         # type: ignore[call-overload]
        self.news.clear()
        return Selected(folder, exists, codes["UIDVALIDITY"], codes["UIDNEXT"])

    async def uids(self, after: int = 0) -> list[int]:
        """The UIDs of the selected folder above `after` (all of them by default), in order."""
        got = await self.run(lambda: self.conn.uid_search(f"UID {after + 1}:*" if after else "ALL"))
        return sorted(n for e in got if isinstance(e, Search) for n in e.numbers if n > after)

    async def summaries(self, uids: Sequence[int]) -> list[Summary]:
        """The list rows of `uids` (one FETCH: give a page at a time)."""
        if not uids:
            return []
        items = f"(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({LIST_FIELDS})])"
        got = await self.run(lambda: self.conn.uid_fetch(uid_set(sorted(set(uids))), items))
        out = [Summary(e.uid, e.flags or (), e.size or 0, next(iter(e.sections.values()), b""))
               for e in got if isinstance(e, Fetch) and e.uid is not None]
        return sorted(out, key=lambda s: s.uid)

    async def message(self, uid: int) -> bytes:
        for e in await self.run(lambda: self.conn.uid_fetch(str(uid), "(UID BODY.PEEK[])")):
            if isinstance(e, Fetch) and e.uid == uid and "BODY[]" in e.sections:
                return e.sections["BODY[]"]
        raise ImapError(f"message UID {uid} is gone")

    async def store(self, uid: int, flags: Sequence[str], add: bool = True) -> None:
        await self.run(lambda: self.conn.uid_store(str(uid), "+FLAGS" if add else "-FLAGS", flags, silent=True))

    async def move(self, uid: int, folder: str) -> None:
        await self.run(lambda: self.conn.uid_move(str(uid), folder))

    async def expunge(self) -> None:
        await self.run(self.conn.expunge)

    async def append(self, folder: str, message: bytes, flags: Sequence[str] = ()) -> int | None:
        """Put `message` into `folder`; its UID when the server says (UIDPLUS's APPENDUID)."""
        code = (await self._exchange(lambda: self.conn.append(folder, message, flags)))[0].code
        if code is not None and code.name == "APPENDUID":
            uids = code.value[1]                              # type: ignore[index]
            return int(uids) if uids.isdigit() else None
        return None

    async def idle(self, stop: asyncio.Event) -> list[News]:
        """IDLE (RFC 2177) until the server has news or `stop` is set; the news (with any
        that came during earlier commands)."""
        async with self._lock:
            tag = self.conn.idle()
            await self._flush()
            while not isinstance(first := await self._event(), Continuation):
                if isinstance(first, Completed) and first.tag == tag:
                    raise ImapError(f"IDLE refused: {first.status} {first.text}".rstrip())
                self._keep(first, idling=True)
            renew_at = asyncio.get_running_loop().time() + IDLE_RENEW
            while not self.news and not stop.is_set():
                event = self.conn.next_event()
                if event is NEED_DATA:
                    left = renew_at - asyncio.get_running_loop().time()
                    data = await self._read_unless(stop, left) if left > 0 else None
                    if data is None:
                        break
                    self._receive(data)
                elif isinstance(event, Closed):
                    raise self._lost(event.reason)
                else:
                    self._keep(event, idling=True)           # type: ignore[arg-type]
            self.conn.done()
            await self._flush()
            while not (isinstance(event := await self._event(), Completed) and event.tag == tag):
                self._keep(event, idling=True)
            news, self.news = self.news, []
            return news

    async def run(self, queue: Callable[[], str]) -> list[Event]:
        """One command, queued on the connection by `queue`: the untagged events it brought."""
        return (await self._exchange(queue))[1]

    # --- the wire ---------------------------------------------------------------------------
    async def _exchange(self, queue: Callable[[], str]) -> tuple[Completed, list[Event]]:
        async with self._lock:
            if self.conn.closed:
                raise ImapError(f"the connection to {self.where} is closed")
            tag = queue()
            await self._flush()
            got: list[Event] = []
            done: Completed | None = None
            while True:
                event = await self._event()
                if isinstance(event, StartTls) and done is not None:
                    await self._start_tls()
                    return done, got
                if isinstance(event, Completed) and event.tag == tag:
                    if event.status != "OK":
                        raise ImapError(f"{event.command.split()[-1]} refused: {event.status} {event.text}".rstrip())
                    if event.command != "STARTTLS":
                        return event, got
                    done = event                      # its StartTls event comes next
                    continue
                self._keep(event)
                got.append(event)

    async def _event(self) -> Event:
        """The connection's next event, reading as needed."""
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                try:
                    async with asyncio.timeout(self.timeout):
                        data = await self.reader.read(READ)
                except (OSError, ssl.SSLError, TimeoutError) as e:
                    raise self._lost(f"connection lost: {network_reason(e)}") from None
                self._receive(data)
                await self._flush()                   # a "+" may have released a literal
            elif isinstance(event, Closed):
                raise self._lost(event.reason)
            else:
                return event                          # type: ignore[return-value]

    async def _read_unless(self, stop: asyncio.Event, timeout: float) -> bytes | None:
        """What the server sends within `timeout`, or None if `stop` is set (or time runs out) first."""
        reading = asyncio.ensure_future(self.reader.read(READ))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({reading, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not reading.done():
                reading.cancel()                      # only ever waiting for data: nothing read is lost
        try:
            return await reading
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():   # type: ignore[union-attr]
                raise
            return None
        except (OSError, ssl.SSLError) as e:
            raise self._lost(f"connection lost: {network_reason(e)}") from None

    def _receive(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._publish()

    async def _flush(self) -> None:
        self._publish()
        out = self.conn.data_to_send()
        if not out:
            return
        try:
            self.writer.write(out)
            async with asyncio.timeout(self.timeout):
                await self.writer.drain()
        except (OSError, ssl.SSLError, TimeoutError) as e:
            raise self._lost(f"connection lost: {network_reason(e)}") from None

    async def _start_tls(self) -> None:
        context, hostname = self._tls
        try:
            async with asyncio.timeout(self.timeout):
                await self.writer.start_tls(context, server_hostname=hostname)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError, TimeoutError) as e:
            raise self._lost(f"TLS handshake with {hostname}: {network_reason(e)}") from None
        self.conn.tls_started()
        if self.on_line is not None:
            self.on_line("note", "TLS established: what follows is ciphertext on the wire")

    def _keep(self, event: Event, idling: bool = False) -> None:
        """Keep the mailbox's news: messages come and go (EXISTS, EXPUNGE), and while idling
        flags change (FETCH; otherwise a FETCH is the answer to our own command)."""
        if isinstance(event, (Exists, Expunge)) or idling and isinstance(event, Fetch):
            self.news.append(event)

    def _lost(self, reason: str) -> ImapError:
        self.conn.connection_lost(reason)
        self._publish()
        self.writer.close()
        return ImapError(reason)

    def _publish(self) -> None:
        lines = self.conn.transcript()
        if self.on_line is not None:
            for direction, text in lines:
                self.on_line(_SHOWN[direction], text)
