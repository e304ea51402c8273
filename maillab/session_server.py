"""What the IMAP and POP3 servers share: the listener, the set of live sessions, transcript flushing.

`SessionServer` listens on the host's own address, runs one task per
connection (turning clients away with `busy_reply` past `max_sessions`), and
on `stop()` cancels every session task and waits for it, so each session
ends through its own clean-up.  A session is any object with `id`, `writer`
and a sans-IO `conn` offering `transcript()` and `data_to_send()`.
Subclasses set `service` (the endpoint's name) and `port()`, build sessions
in `new_session` and serve them in `run`; `started`/`stopping` are hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Generic, TypeVar

from .context import LabContext
from .events import Notice, SessionLine
from .ports import Endpoint
from .world import Host

S = TypeVar("S")


class SessionServer(Generic[S]):
    service = ""
    busy_reply = b""

    def __init__(self, ctx: LabContext, host: Host, domains: tuple[str, ...], max_sessions: int) -> None:
        self.ctx = ctx
        self.host = host
        self.domains = tuple(d.lower() for d in domains)
        self.max_sessions = max_sessions
        self.endpoints: list[Endpoint] = []
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], S] = {}

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def port(self) -> int:
        raise NotImplementedError

    def new_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> S:
        raise NotImplementedError

    async def run(self, session: S) -> None:
        raise NotImplementedError

    async def started(self) -> None:
        """After the listener is up."""

    async def stopping(self) -> None:
        """After every session has ended, before the listener is gone."""

    async def start(self) -> None:
        port = self.port()
        self._server = await asyncio.start_server(self._accept, self.host.address, port,
                                                  reuse_address=True, backlog=1024)
        self.endpoints = [Endpoint(self.service, self.host.name, self.host.address, port)]
        await self.started()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._sessions)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.stopping()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._sessions) >= self.max_sessions:
            with contextlib.suppress(OSError):
                writer.write(self.busy_reply)
                writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        session = self._sessions[task] = self.new_session(reader, writer)
        try:
            await self.run(session)
        except asyncio.CancelledError:
            pass        # stop() cancelled us; asyncio's stream callback would log a cancelled task as an error
        finally:
            del self._sessions[task]

    def publish_transcript(self, s: Any) -> None:
        now, bus, host = self.ctx.clock.now(), self.ctx.bus, self.host.name
        for direction, text in s.conn.transcript():
            bus.publish(SessionLine(now, s.id, host, direction, text))

    def notice(self, program: str, text: str) -> None:
        self.ctx.bus.publish(Notice(self.ctx.clock.now(), self.host.name, program, text))

    async def flush(self, s: Any) -> None:
        """Transcript lines to the bus, reply bytes to the client (bounded by the session timeout)."""
        self.publish_transcript(s)
        data = s.conn.data_to_send()
        if data:
            s.writer.write(data)
            async with asyncio.timeout(self.ctx.session_timeout):
                await s.writer.drain()
