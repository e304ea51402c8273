"""The control socket: how admin commands talk to a running lab.

A running lab listens on `<state>/control.sock` (a Unix socket, so only the
user who runs the lab can reach it; `socket_path` picks a short stand-in
under the temp folder when the state path is too long for AF_UNIX).  One request per connection: a JSON
object `{"command": "queue.list", "args": {...}}` on one line; the answer is
one JSON line, `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`.
A handler may instead return a `Streamed` text (the queue listing of 100,000
messages is 20 MB): the answer is then `{"ok": true, "stream": true}` and the
text itself as UTF-8 up to the end of the connection, sent piece by piece so
that the lab goes on with other work in between and the client prints as it
receives.

The server side dispatches to handlers the lab registers; the client side is
plain blocking sockets, for the CLI.  Requests are bounded (64 KiB) and time
out, so a stuck client can not hold the lab.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Awaitable, BinaryIO, Callable, Iterable

from ..base.errors import UserError
from ..base.fsutil import UnsafeFolder, private_dir

MAX_REQUEST = 64 * 1024
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def socket_path(state_root: Path) -> Path:
    """`<state>/control.sock`, or a short stand-in when that path is too long for AF_UNIX."""
    path = state_root.resolve() / "control.sock"
    if len(str(path).encode()) < 100:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"maillab-{os.getuid()}"
    try:
        private_dir(folder)
    except UnsafeFolder as e:
        raise ControlError(f"control socket folder {e}") from None
    return folder / f"{digest}.sock"


@dataclass
class Streamed:
    """A long text answer, as pieces rendered one at a time."""
    pieces: Iterable[str]


class ControlError(UserError):
    """A request the lab refused or could not serve; str() is one line for the user."""


class NotRunning(ControlError):
    """No lab answers on this state folder."""


class ControlServer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.handlers: dict[str, Handler] = {}
        self._server: asyncio.AbstractServer | None = None

    def register(self, command: str, handler: Handler) -> None:
        self.handlers[command] = handler

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                line = await reader.readline()
            answer = await self._dispatch(line)
        except (TimeoutError, ConnectionError):
            answer = {"ok": False, "error": "request timed out"}
        except ValueError:
            answer = {"ok": False, "error": "request too long"}
        try:
            result = answer.get("result")
            if isinstance(result, Streamed):
                writer.write(b'{"ok": true, "stream": true}\n')
                await self._stream(writer, result)
            else:
                writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    @staticmethod
    async def _stream(writer: asyncio.StreamWriter, result: Streamed) -> None:
        try:
            for piece in result.pieces:
                writer.write(piece.encode("utf-8", "surrogateescape"))
                await writer.drain()         # lets the loop serve others between pieces
        except ConnectionError:
            raise
        except Exception as e:   # a bug of ours: the reader sees it at the end of the text
            writer.write(f"\nmaillab: internal error, text cut short: {type(e).__name__}: {e}\n".encode())

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        if len(line) > MAX_REQUEST:
            return {"ok": False, "error": "request too long"}
        try:
            request = json.loads(line)
            command, args = request["command"], request.get("args", {})
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "malformed request"}
        handler = self.handlers.get(command)
        if handler is None:
            return {"ok": False, "error": f"unknown command {command!r}"}
        try:
            return {"ok": True, "result": await handler(args)}
        except ControlError as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:   # a bug of ours: say so, keep the lab running
            return {"ok": False, "error": f"internal error in {command}: {type(e).__name__}: {e}"}


def call(path: Path, command: str, timeout: float = 30.0, out: BinaryIO | None = None, **args: Any) -> Any:
    """Send one request to the lab on `path`; raise NotRunning or ControlError.

    A streamed answer is copied to `out` as it arrives (and None returned);
    without `out` it is read whole and returned as text.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning("no lab is running on this state folder") from None
        sock.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
        data = bytearray()
        while b"\n" not in data:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        line, _, rest = bytes(data).partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError:
            raise ControlError("the lab sent no answer") from None
        if not answer.get("ok"):
            raise ControlError(answer.get("error", "request failed"))
        if not answer.get("stream"):
            return answer.get("result")
        return _receive_stream(sock, rest, out)
    finally:
        sock.close()


def _receive_stream(sock: socket.socket, first: bytes, out: BinaryIO | None) -> str | None:
    pieces: list[bytes] = []
    keep = pieces.append if out is None else out.write
    if first:
        keep(first)
    while chunk := sock.recv(1 << 18):
        keep(chunk)
    return b"".join(pieces).decode("utf-8", "surrogateescape") if out is None else None
