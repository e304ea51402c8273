"""The MUA's POP3 client on asyncio (RFC 1939, STLS of RFC 2595, TLS on connect of RFC 8314).

POP3 is the course's other way of reading mail: the client downloads, and
what it marks with DELE is removed only when QUIT ends the session (the
UPDATE state) — a session that ends otherwise deletes nothing.  `connect`,
`login` (USER/PASS), `listing` (UIDL and LIST: number, unique id, size),
`top` (the header without the body), `retr` (the whole message, dot-stuffing
undone, CRLF kept), `dele`, `rset`, `quit`.  Every line both ways goes to
`on_line(direction, text)` (the X-ray), PASS masked, message lines summed up.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Callable, Literal

from ..base.errors import network_reason

LineSink = Callable[[str, str], None]
TlsWay = Literal["plain", "starttls", "tls"]
MAX_LINE = 64 * 1024
MAX_MESSAGE = 64 * 1024 * 1024


class Pop3Error(Exception):
    """An -ERR, or a broken connection; str() is one line for the user."""


@dataclass(frozen=True, slots=True)
class Entry:
    number: int
    uid: str
    size: int


class Pop3Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 timeout: float, on_line: LineSink | None) -> None:
        self.reader, self.writer = reader, writer
        self.timeout = timeout
        self.on_line = on_line
        self._lock = asyncio.Lock()          # one command and its answer at a time

    @classmethod
    async def connect(cls, address: str, port: int, *, tls: TlsWay, context: ssl.SSLContext | None,
                      server_hostname: str, timeout: float = 30.0, on_line: LineSink | None = None) -> "Pop3Client":
        if on_line is not None:
            on_line("note", f"connecting to {server_hostname} [{address}]:{port}" + (" with TLS" if tls == "tls" else ""))
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=context if tls == "tls" else None,
                    server_hostname=server_hostname if tls == "tls" else None, limit=MAX_LINE)
        except (OSError, ssl.SSLError, TimeoutError) as e:
            raise Pop3Error(f"cannot connect to {server_hostname}:{port}: {network_reason(e)}") from None
        client = cls(reader, writer, timeout=timeout, on_line=on_line)
        await client._status()
        if tls == "starttls":
            await client._command("STLS")
            try:
                async with asyncio.timeout(timeout):
                    await writer.start_tls(context, server_hostname=server_hostname)  # type: ignore[arg-type]
            except (OSError, ssl.SSLError, TimeoutError) as e:
                raise Pop3Error(f"TLS handshake with {server_hostname}: {network_reason(e)}") from None
            if on_line is not None:
                on_line("note", "TLS established: what follows is ciphertext on the wire")
        return client

    async def login(self, user: str, password: str) -> str:
        await self._command("USER", user)
        return await self._command("PASS", password, shown="PASS ***")

    async def listing(self) -> list[Entry]:
        sizes = {int(n): int(s) for n, s in (line.split()[:2] for line in await self._lines("LIST"))}
        uids = dict(line.split()[:2] for line in await self._lines("UIDL"))
        return [Entry(n, uids.get(str(n), ""), size) for n, size in sorted(sizes.items())]

    async def top(self, number: int, lines: int = 0) -> bytes:
        return await self._message(f"TOP {number} {lines}")

    async def retr(self, number: int) -> bytes:
        return await self._message(f"RETR {number}")

    async def dele(self, number: int) -> None:
        await self._command("DELE", str(number))

    async def rset(self) -> None:
        await self._command("RSET")

    async def quit(self) -> None:
        """QUIT: the server removes what DELE marked (RFC 1939 §6), then closes."""
        try:
            await self._command("QUIT")
        finally:
            self.writer.close()

    async def close(self) -> None:
        """End without QUIT: nothing marked is deleted."""
        self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass

    # --- the wire ---------------------------------------------------------------------------
    async def _line(self) -> bytes:
        try:
            async with asyncio.timeout(self.timeout):
                line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise Pop3Error("the server closed the connection") from None
        except asyncio.LimitOverrunError:
            raise Pop3Error(f"a line of over {MAX_LINE} octets") from None
        except (OSError, ssl.SSLError, TimeoutError) as e:
            raise Pop3Error(f"connection lost: {network_reason(e)}") from None
        return line

    async def _status(self) -> str:
        line = (await self._line()).decode("utf-8", "replace").rstrip("\r\n")
        if self.on_line is not None:
            self.on_line("in", line)
        if not line.startswith("+OK"):
            raise Pop3Error(line or "no answer")
        return line

    async def _command(self, verb: str, *args: str, shown: str = "") -> str:
        async with self._lock:
            return await self._exchange(verb, *args, shown=shown)

    async def _exchange(self, verb: str, *args: str, shown: str = "") -> str:
        text = " ".join((verb, *args))
        if any(c in text for c in "\r\n\0"):
            raise ValueError(f"{text!r}: a line break has no place in a POP3 command")
        if self.on_line is not None:
            self.on_line("out", shown or text)
        self.writer.write(text.encode() + b"\r\n")
        return await self._status()

    async def _lines(self, command: str) -> list[str]:
        return [line.decode("utf-8", "replace").rstrip("\r\n") for line in await self._multiline(command)]

    async def _message(self, command: str) -> bytes:
        lines = await self._multiline(command)
        if self.on_line is not None:
            self.on_line("note", f"({len(lines)} lines of the message)")
        return b"".join(lines)

    async def _multiline(self, command: str) -> list[bytes]:
        """A multi-line answer's lines, the final "." gone and dot-stuffing undone (RFC 1939 §3)."""
        verb, *args = command.split()
        async with self._lock:
            await self._exchange(verb, *args)
            return await self._answer_lines(command)

    async def _answer_lines(self, command: str) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = await self._line()
            if line in (b".\r\n", b".\n"):
                if self.on_line is not None and not command.startswith(("RETR", "TOP")):
                    for shown in lines:
                        self.on_line("in", shown.decode("utf-8", "replace").rstrip("\r\n"))
                return lines
            total += len(line)
            if total > MAX_MESSAGE:
                raise Pop3Error(f"an answer of over {MAX_MESSAGE} octets")
            lines.append(line[1:] if line.startswith(b".") else line)

