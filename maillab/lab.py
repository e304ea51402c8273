"""The lab supervisor: builds a whole world on one asyncio loop, starts and stops it.

`Lab` is what `maillab serve`, the TUI and the tests embed: it loads the
account directory, starts the DNS server, one `Mta` per host of the world,
replays every spool, and on `stop()` closes all listeners and sessions with
the spool kept on disk.  It owns no protocol logic itself.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import TextIO

from .clock import Clock
from .context import LabContext
from .directory import Directory
from .dns.authority import Authority
from .dns.client import LabResolver
from .dns.server import DnsServer
from .events import EventBus, Notice
from .maillog import MailLog
from .mda import Mda
from .mta import Endpoint, Mta
from .ports import Ports
from .state import StateDir
from .world import World

DNS_ADDRESS = "127.0.0.1"


class LabError(Exception):
    """The lab can not start; str() is one line for the user."""


@dataclass
class Lab:
    world: World
    state: StateDir
    ports: Ports = field(default_factory=Ports)
    clock: Clock = field(default_factory=Clock)
    bus: EventBus = field(default_factory=EventBus)
    echo: TextIO | None = None          # a stream that also gets the maillog
    session_timeout: float = 300.0
    retry_delay: float = 300.0

    def __post_init__(self) -> None:
        self.mtas: dict[str, Mta] = {}
        self.endpoints: list[Endpoint] = []
        self._dns: DnsServer | None = None
        self._log: MailLog | None = None
        self.ctx: LabContext | None = None

    async def start(self) -> None:
        self.state.prepare()
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        directory = Directory(self.state.directory_file)
        directory.seed(self.world)
        self._log = MailLog(self.bus, self.state.maillog, self.echo)
        self._log.start()
        self.ctx = LabContext(world=self.world, state=self.state, ports=self.ports, clock=self.clock,
                              bus=self.bus, directory=directory, mda=Mda(self.state, directory),
                              resolver=LabResolver(DNS_ADDRESS, self.ports.dns),
                              session_timeout=self.session_timeout, retry_delay=self.retry_delay)
        self._dns = DnsServer(Authority(self.world.zones), self.bus, self.clock, DNS_ADDRESS, self.ports.dns)
        try:
            await self._dns.start()
        except OSError as e:
            raise LabError(f"cannot listen for DNS on {DNS_ADDRESS}:{self.ports.dns}: {e.strerror}") from None
        self.endpoints.append(Endpoint("dns", "ns.lab (udp+tcp)", DNS_ADDRESS, self.ports.dns))
        for host in self.world.hosts.values():
            mta = Mta(host, self.ctx)
            self.mtas[host.name] = mta
            try:
                await mta.start()
            except OSError as e:
                raise LabError(f"cannot listen on {host.address} for {host.name}: {e.strerror}"
                               f" (is another lab running? try --port-offset)") from None
            self.endpoints += mta.endpoints
        replayed = sum(mta.replay() for mta in self.mtas.values())
        self.bus.publish(Notice(self.clock.now(), "maillab", "master",
                                f"daemon started -- world {self.world.name}, {len(self.world.hosts)} hosts, "
                                f"{len(self.endpoints)} endpoints, {replayed} queued message"
                                f"{'s' if replayed != 1 else ''} replayed, pid {os.getpid()}"))

    async def stop(self) -> None:
        for mta in self.mtas.values():
            await mta.stop()
        if self._dns is not None:
            await self._dns.stop()
        if self.ctx is not None:
            self.bus.publish(Notice(self.clock.now(), "maillab", "master", "daemon stopped, queue kept"))
            self.ctx.directory.close()
        if self._log is not None:
            await self._log.stop()
        self.state.release()

    def mta(self, host: str) -> Mta:
        return self.mtas[host]

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no delivery is running (tests and benchmarks)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while any(m._tasks for m in self.mtas.values()):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("deliveries still running")
            await asyncio.sleep(0.01)
