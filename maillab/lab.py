"""The lab supervisor: builds a whole world on one asyncio loop, starts and stops it.

`Lab` is what `maillab serve`, the TUI and the tests embed: it loads the
account directory, starts the DNS server, one `Mta` per host of the world,
replays every spool, and listens on the control socket for the admin commands
(`maillab queue`, `hosts`, `clock`, `dns`).  On `stop()` it closes every
listener and session with the spool kept on disk.  It owns no protocol logic.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any, TextIO

from .access import AccessAgent, access_agents
from .clock import Clock
from .context import LabContext
from .control import ControlError, ControlServer, socket_path
from .directory import Directory
from .dns.authority import Authority
from .dns.client import LabResolver
from .dns.server import DnsServer
from .errors import UserError
from .events import EventBus, Notice
from .maillog import MailLog
from .mda import Mda
from .mta import CHAOS_STAGES, Chaos, Mta
from .ports import Endpoint, Ports
from .queue.listing import format_queue
from .queue.manager import QueueError
from .queue.records import RetryPolicy
from .state import StateDir
from .store import MailStore
from .world import World

DNS_ADDRESS = "127.0.0.1"


class LabError(UserError):
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
    smtp_timeout: float = 30.0
    retry: RetryPolicy | None = None     # default: the world's, else Postfix's

    def __post_init__(self) -> None:
        self.mtas: dict[str, Mta] = {}
        self.endpoints: list[Endpoint] = []
        self._dns: DnsServer | None = None
        self._authority: Authority | None = None
        self._log: MailLog | None = None
        self._control: ControlServer | None = None
        self._agents: list[AccessAgent] = []
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
        store = MailStore(self.state, self.bus, self.clock)
        self.ctx = LabContext(world=self.world, state=self.state, ports=self.ports, clock=self.clock,
                              bus=self.bus, directory=directory, store=store, mda=Mda(directory, store),
                              resolver=LabResolver(DNS_ADDRESS, self.ports.dns),
                              session_timeout=self.session_timeout, smtp_timeout=self.smtp_timeout,
                              retry=self.retry or self.world.retry)
        self._authority = Authority(self.world.zones)
        self._dns = DnsServer(self._authority, self.bus, self.clock, DNS_ADDRESS, self.ports.dns)
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
            for agent in access_agents(self.ctx, host, mta.mailbox_domains) if mta.mailbox_domains else ():
                self._agents.append(agent)
                try:
                    await agent.start()
                except OSError as e:
                    raise LabError(f"cannot listen on {host.address} for {host.name}: {e.strerror}"
                                   f" (is another lab running? try --port-offset)") from None
                self.endpoints += agent.endpoints
        self._control = ControlServer(socket_path(self.state.root))
        self._register_commands(self._control)
        await self._control.start()
        replayed = sum(mta.queue.replay() for mta in self.mtas.values())
        self.bus.publish(Notice(self.clock.now(), "maillab", "master",
                                f"daemon started -- world {self.world.name}, {len(self.world.hosts)} hosts, "
                                f"{len(self.endpoints)} endpoints, {replayed} queued message"
                                f"{'s' if replayed != 1 else ''} replayed, pid {os.getpid()}"))

    async def stop(self) -> None:
        if self._control is not None:
            await self._control.stop()
        for agent in self._agents:
            await agent.stop()
        for mta in self.mtas.values():
            await mta.stop()
        if self._dns is not None:
            await self._dns.stop()
        if self.ctx is not None:
            self.ctx.resolver.close()
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
        while any(m.queue.busy for m in self.mtas.values()):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("deliveries still running")
            await asyncio.sleep(0.01)

    # --- admin, shared by the control socket and the TUI ------------------------
    def queue_listing(self) -> list[dict]:
        return sorted((item for mta in self.mtas.values() for item in mta.queue.listing()),
                      key=lambda item: (item["arrival"], item["id"]))

    def _find(self, qid: str) -> Mta:
        for mta in self.mtas.values():
            if qid.upper() in mta.queue.entries:
                return mta
        raise ControlError(f"no message {qid} in any queue")

    def _host(self, name: str) -> Mta:
        mta = self.mtas.get(name.lower().rstrip("."))
        if mta is None:
            raise ControlError(f"no host {name} in this world (try: maillab hosts)")
        return mta

    def hosts_listing(self) -> list[dict]:
        return [{"name": m.host.name, "address": m.host.address, "state": m.state,
                 "chaos": m.chaos.describe() if m.chaos else "",
                 "services": [f"{e.service}:{e.port}" for e in m.endpoints],
                 "domains": list(m.mailbox_domains), "queued": len(m.queue.entries)}
                for m in self.mtas.values()]

    def _register_commands(self, control: ControlServer) -> None:
        async def queue_list(args: dict[str, Any]) -> Any:
            return self.queue_listing()

        async def queue_text(args: dict[str, Any]) -> Any:
            rows = [(mta.host.name, e) for mta in self.mtas.values() for e in mta.queue.entries.values()]
            rows.sort(key=lambda row: (row[1].arrival, row[1].id))
            return format_queue(rows)

        async def queue_flush(args: dict[str, Any]) -> Any:
            return sum(mta.queue.flush() for mta in self.mtas.values())

        def per_message(action: str):
            async def handler(args: dict[str, Any]) -> Any:
                qid = str(args.get("id", ""))
                try:
                    await getattr(self._find(qid).queue, action)(qid)
                except QueueError as e:
                    raise ControlError(str(e)) from None
                return qid.upper()
            return handler

        async def hosts_list(args: dict[str, Any]) -> Any:
            return self.hosts_listing()

        async def hosts_down(args: dict[str, Any]) -> Any:
            mta = self._host(str(args.get("host", "")))
            try:
                await mta.down(str(args.get("mode", "refuse")))
            except ValueError as e:
                raise ControlError(str(e)) from None
            return mta.state

        async def hosts_up(args: dict[str, Any]) -> Any:
            mta = self._host(str(args.get("host", "")))
            await mta.up()
            return mta.state

        async def hosts_chaos(args: dict[str, Any]) -> Any:
            mta = self._host(str(args.get("host", "")))
            if args.get("off"):
                mta.set_chaos(None)
                return "off"
            stage, code = str(args.get("stage", "RCPT")).upper(), int(args.get("code", 451))
            probability = float(args.get("probability", 0.5))
            if stage not in CHAOS_STAGES or not 400 <= code <= 599 or not 0 <= probability <= 1:
                raise ControlError(f"chaos needs a stage ({', '.join(CHAOS_STAGES)}), a 4xx or 5xx code "
                                   "and a probability between 0 and 1")
            mta.set_chaos(Chaos(stage, probability, code, int(args.get("seed", 0))))
            return mta.chaos.describe() if mta.chaos else "off"

        async def clock_show(args: dict[str, Any]) -> Any:
            return {"now": self.clock.now(), "speed": self.clock.speed}

        async def clock_advance(args: dict[str, Any]) -> Any:
            self.clock.advance(float(args.get("seconds", 0)))
            return {"now": self.clock.now(), "speed": self.clock.speed}

        async def clock_speed(args: dict[str, Any]) -> Any:
            try:
                self.clock.set_speed(float(args.get("speed", 1)))
            except ValueError as e:
                raise ControlError(str(e)) from None
            return {"now": self.clock.now(), "speed": self.clock.speed}

        async def dns_fault(args: dict[str, Any]) -> Any:
            assert self._authority is not None
            mode = args.get("mode")
            try:
                self._authority.set_fault(str(args.get("zone", "")), None if mode in (None, "off") else str(mode))
            except (KeyError, ValueError) as e:
                raise ControlError(str(e).strip("'\"")) from None
            return {z.to_text(): m for z, m in self._authority.faults.items()}

        for name, handler in {
            "queue.list": queue_list, "queue.text": queue_text, "queue.flush": queue_flush,
            "queue.hold": per_message("hold"), "queue.release": per_message("release"),
            "queue.delete": per_message("delete"), "queue.requeue": per_message("requeue"),
            "hosts.list": hosts_list, "hosts.down": hosts_down, "hosts.up": hosts_up,
            "hosts.chaos": hosts_chaos, "clock.show": clock_show, "clock.advance": clock_advance,
            "clock.speed": clock_speed, "dns.fault": dns_fault,
        }.items():
            control.register(name, handler)
