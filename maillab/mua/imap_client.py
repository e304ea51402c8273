"""The MUA's IMAP client on asyncio: one connection, commands one at a time, IDLE between them.

`ImapClient.connect` opens the connection in the TLS way asked (`plain`,
`starttls`: STARTTLS before anything else, `tls`: TLS from the first octet),
verifying the server against the context given; then `login`, `folders`,
`status`, `select`, `summaries` (a page of the message list: UID, FLAGS,
size, the header fields a list shows), `message` (BODY.PEEK[]: reading does
not set \\Seen until the client says so), `store`, `move`, `expunge`,
`append` (APPENDUID's UID back) and `idle`, which waits for the server's
news (EXISTS, EXPUNGE, FETCH) until told to stop.  Every line both ways goes
to `on_line(direction, text)` as it happens (the X-ray), secrets masked.

Every read and write has a time-out; a NO or BAD, a lost connection or a
time-out is an `ImapError` with the server's words or the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Callable, Literal as Kind, Sequence

from ..base.errors import network_reason
from ..imap.messages import uid_set
from ..store.names import decode_mutf7, encode_mutf7
from .imap_wire import ImapWireError, Literal, Response, ResponseReader, Secret, command, fetch_items, quote

LineSink = Callable[[str, str], None]
TlsWay = Kind["plain", "starttls", "tls"]
LIST_FIELDS = "FROM TO SUBJECT DATE MESSAGE-ID IN-REPLY-TO REFERENCES RECEIVED"
READ = 65536


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

    def field(self, name: str) -> str:
        value = BytesHeaderParser(policy=default).parsebytes(self.header)[name]
        return " ".join(str(value).split()) if value is not None else ""


class ImapClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 timeout: float, on_line: LineSink | None) -> None:
        self.reader, self.writer = reader, writer
        self.timeout = timeout
        self.on_line = on_line
        self._wire = ResponseReader()
        self._ready: list[Response] = []
        self._tags = (f"M{n}" for n in itertools.count(1))
        self.capabilities: set[str] = set()
        self.news: list[Response] = []           # untagged EXISTS/EXPUNGE/FETCH not yet looked at
        self._lock = asyncio.Lock()

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
        client = cls(reader, writer, timeout=timeout, on_line=on_line)
        greeting = await client._response()
        if greeting.status not in ("OK", "PREAUTH"):
            await client.close()
            raise ImapError(f"{server_hostname} refused the connection: {greeting.text}")
        client._learn(greeting)
        if tls == "starttls":
            await client.starttls(context, server_hostname)
        return client

    async def starttls(self, context: ssl.SSLContext | None, server_hostname: str) -> None:
        await self.run("STARTTLS")
        try:
            async with asyncio.timeout(self.timeout):
                await self.writer.start_tls(context, server_hostname=server_hostname)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError, TimeoutError) as e:
            raise ImapError(f"TLS handshake with {server_hostname}: {network_reason(e)}") from None
        self._wire = ResponseReader()              # nothing read before the handshake counts
        self._ready.clear()
        self._note("TLS established: what follows is ciphertext on the wire")
        self.capabilities = set()
        await self.run("CAPABILITY")

    async def close(self) -> None:
        self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass

    async def logout(self) -> None:
        try:
            await self.run("LOGOUT")
        except ImapError:
            pass
        await self.close()

    # --- commands ---------------------------------------------------------------------------
    async def login(self, user: str, password: str) -> None:
        await self.run("LOGIN", quote(user), Secret(password))
        if not self.capabilities or "IMAP4REV1" not in self.capabilities:
            await self.run("CAPABILITY")

    async def folders(self) -> list[Folder]:
        out = []
        for r in await self.run("LIST", '""', '"*"'):
            if r.tag == "*" and r.values and str(r.values[0]).upper() == "LIST" and len(r.values) >= 4:
                flags = r.values[1] if isinstance(r.values[1], list) else []
                name = r.values[3]
                name = name.decode() if isinstance(name, bytes) else str(name)
                out.append(Folder(decode_mutf7(name), tuple(str(f) for f in flags)))
        return out

    async def status(self, folder: str) -> dict[str, int]:
        for r in await self.run("STATUS", quote(encode_mutf7(folder)), "(MESSAGES UNSEEN UIDNEXT)"):
            if r.tag == "*" and r.values and str(r.values[0]).upper() == "STATUS":
                items = r.values[2] if len(r.values) > 2 and isinstance(r.values[2], list) else []
                return {str(k).upper(): int(str(v)) for k, v in zip(items[::2], items[1::2])}
        return {}

    async def select(self, folder: str) -> Selected:
        exists = uidvalidity = uidnext = 0
        for r in await self.run("SELECT", quote(encode_mutf7(folder))):
            n = r.number()
            if n and n[1] == "EXISTS":
                exists = n[0]
            code = r.code.split()
            if len(code) == 2 and code[0].upper() == "UIDVALIDITY":
                uidvalidity = int(code[1])
            if len(code) == 2 and code[0].upper() == "UIDNEXT":
                uidnext = int(code[1])
        self.news.clear()
        return Selected(folder, exists, uidvalidity, uidnext)

    async def uids(self) -> list[int]:
        """Every UID of the selected folder, in order."""
        for r in await self.run("UID SEARCH", "ALL"):
            if r.tag == "*" and r.values and str(r.values[0]).upper() == "SEARCH":
                return sorted(int(str(v)) for v in r.values[1:])
        return []

    async def summaries(self, uids: Sequence[int]) -> list[Summary]:
        """The list rows of `uids` (one FETCH: give a page at a time)."""
        if not uids:
            return []
        out = []
        for r in await self.run("UID FETCH", uid_set(sorted(set(uids))),
                                f"(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS ({LIST_FIELDS})])"):
            if r.number() and r.number()[1] == "FETCH":     # type: ignore[index]
                items = fetch_items(r)
                header = next((v for k, v in items.items() if k.startswith("BODY[")), b"")
                flags = items.get("FLAGS")
                out.append(Summary(int(str(items.get("UID", 0))), tuple(str(f) for f in flags or []),
                                   int(str(items.get("RFC822.SIZE", 0))),
                                   header if isinstance(header, bytes) else (header or "").encode()))
        return sorted(out, key=lambda s: s.uid)

    async def message(self, uid: int) -> bytes:
        for r in await self.run("UID FETCH", str(uid), "(UID BODY.PEEK[])"):
            if r.number() and r.number()[1] == "FETCH":     # type: ignore[index]
                body = fetch_items(r).get("BODY[]")
                if isinstance(body, bytes):
                    return body
        raise ImapError(f"message UID {uid} is gone")

    async def store(self, uid: int, flags: Sequence[str], add: bool = True) -> None:
        await self.run("UID STORE", str(uid), "+FLAGS.SILENT" if add else "-FLAGS.SILENT", f"({' '.join(flags)})")

    async def move(self, uid: int, folder: str) -> None:
        target = quote(encode_mutf7(folder))
        if "MOVE" in self.capabilities:
            await self.run("UID MOVE", str(uid), target)
        else:
            await self.run("UID COPY", str(uid), target)
            await self.store(uid, ["\\Deleted"])
            await self.run("UID EXPUNGE", str(uid))

    async def expunge(self) -> None:
        await self.run("EXPUNGE")

    async def append(self, folder: str, message: bytes, flags: Sequence[str] = ()) -> int | None:
        """Put `message` into `folder`; its UID when the server says (UIDPLUS's APPENDUID)."""
        done = await self.run("APPEND", quote(encode_mutf7(folder)), f"({' '.join(flags)})",
                              Literal(message))
        code = done[-1].code.split()
        return int(code[2]) if len(code) == 3 and code[0].upper() == "APPENDUID" else None

    async def idle(self, stop: asyncio.Event, wake_every: float = 25 * 60) -> list[Response]:
        """IDLE (RFC 2177) until the server has news or `stop` is set; the news."""
        async with self._lock:
            tag = next(self._tags)
            self._send(*command(tag, "IDLE"))
            first = await self._response()
            if first.tag != "+":
                raise ImapError(f"IDLE refused: {first.text}")
            stopper = asyncio.ensure_future(stop.wait())
            try:
                while not self.news and not stop.is_set():
                    reading = asyncio.ensure_future(self._response(timeout=None))
                    done, _ = await asyncio.wait({reading, stopper}, timeout=wake_every,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if reading in done:
                        self._untagged(reading.result(), idling=True)
                    else:
                        reading.cancel()            # only ever waiting for data: nothing read is lost
                        with contextlib.suppress(asyncio.CancelledError, ImapError):
                            await reading
                        break
            finally:
                stopper.cancel()
            self._send(b"DONE\r\n", "DONE")
            while True:
                r = await self._response()
                if r.tag == tag:
                    break
                self._untagged(r, idling=True)
            news, self.news = self.news, []
            return news

    async def run(self, verb: str, *args: str | Secret | Literal) -> list[Response]:
        """One command: its untagged responses and, last, its tagged completion (OK)."""
        async with self._lock:
            tag = next(self._tags)
            self._send(*command(tag, verb, *args))
            got: list[Response] = []
            while True:
                r = await self._response()
                if r.tag == "+":
                    continue                       # a literal's go-ahead (we send LITERAL+ ones anyway)
                if r.tag != tag:
                    self._untagged(r)
                    got.append(r)
                    continue
                got.append(r)
                if r.status != "OK":
                    raise ImapError(f"{verb.split()[-1]} refused: {r.status} {r.text}".rstrip())
                self._learn(r)
                return got

    # --- the wire ---------------------------------------------------------------------------
    def _send(self, data: bytes, shown: str) -> None:
        if self.on_line is not None:
            self.on_line("out", shown)
        self.writer.write(data)

    def _note(self, text: str) -> None:
        if self.on_line is not None:
            self.on_line("note", text)

    async def _response(self, timeout: float | None = -1) -> Response:
        limit = self.timeout if timeout == -1 else timeout
        while not self._ready:
            try:
                async with asyncio.timeout(limit):
                    await self.writer.drain()
                    data = await self.reader.read(READ)
            except (OSError, ssl.SSLError, TimeoutError) as e:
                raise ImapError(f"connection lost: {network_reason(e)}") from None
            if not data:
                raise ImapError("the server closed the connection")
            try:
                self._ready += self._wire.feed(data)
            except ImapWireError as e:
                raise ImapError(f"bad response from the server: {e}") from None
        r = self._ready.pop(0)
        if self.on_line is not None:
            self.on_line("in", r.shown)
        return r

    def _untagged(self, r: Response, idling: bool = False) -> None:
        """Keep the mailbox's news: messages come and go (EXISTS, EXPUNGE), and while idling
        flags change (FETCH; otherwise a FETCH is the answer to our own command)."""
        n = r.number()
        if n and (n[1] in ("EXISTS", "EXPUNGE") or idling and n[1] == "FETCH"):
            self.news.append(r)
        self._learn(r)

    def _learn(self, r: Response) -> None:
        words = r.code.split() if r.code else []
        if words and words[0].upper() == "CAPABILITY":
            self.capabilities = {w.upper() for w in words[1:]}
        elif r.tag == "*" and r.values and str(r.values[0]).upper() == "CAPABILITY":
            self.capabilities = {str(w).upper() for w in r.values[1:]}

