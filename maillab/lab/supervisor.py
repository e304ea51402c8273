"""The lab supervisor: builds a whole world on one asyncio loop, starts and stops it.

`Lab` is what `maillab serve`, the TUI and the tests embed: it loads the
account directory, starts the DNS server, one `Mta` per host of the world,
replays every spool (each loaded before any port opens, delivered after),
makes or renews the lab CA's host certificates (`ca.py`) into each host's TLS context,
and listens on the control socket for the admin commands
(`maillab queue`, `hosts`, `clock`, `dns`).  On `stop()` it closes every
listener and session, lets deliveries under way finish for a few seconds, and
keeps the spool on disk.  It owns no protocol logic.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, TextIO

from ..base.clock import Clock
from ..base.errors import UserError
from ..base.events import Delivered, EventBus, Notice
from ..base.syncer import Syncer
from ..auth.dkim_keys import DomainKeys
from ..dns.authority import Authority, Record
from ..dns.client import LabResolver
from ..dns.server import DnsServer
from ..mta.agent import CHAOS_STAGES, STOP_DRAIN, Chaos, Mta
from ..mta.mda import Mda
from ..net.admission import ConnectionLimits
from ..net.ports import Endpoint, Ports, listen_failure
from ..net.tls import server_context
from ..smtp.outbound_tls import OutboundTls
from ..queue.listing import queue_chunks
from ..queue.manager import QueueError
from ..queue.records import RetryPolicy
from ..store import MailStore, StoreError
from ..store.maildir import folder_totals, read_header
from ..store.names import name_from_dirname
from .access import AccessAgent, access_agents
from .ca import LabCA
from .context import LabContext
from .control import ControlError, ControlServer, Streamed, socket_path
from .directory import Directory
from .maillog import MailLog
from .state import StateDir
from .world import World

DNS_ADDRESS = "127.0.0.1"
QUEUE_ACTIONS = ("hold", "release", "delete", "requeue")


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
        self.clock.persist(self.state.clock_file)
        directory = Directory(self.state.directory_file)
        directory.seed(self.world)
        self._log = MailLog(self.bus, self.state.maillog, self.echo)
        self._log.start()
        store = MailStore(self.state, self.bus, self.clock)
        self.ctx = LabContext(world=self.world, state=self.state, ports=self.ports, clock=self.clock,
                              bus=self.bus, directory=directory, store=store, mda=Mda(directory, store),
                              resolver=LabResolver(DNS_ADDRESS, self.ports.dns),
                              syncer=Syncer(self.state.root, use_syncfs=self.state.one_file_system()),
                              session_timeout=self.session_timeout, smtp_timeout=self.smtp_timeout,
                              retry=self.retry or self.world.retry)
        self.ctx.admission.limits = ConnectionLimits.of(self.world)
        self.ctx.server_tls, self.ctx.outbound_tls = await asyncio.to_thread(self._tls)
        self._authority = Authority(self.world.zones)
        self.ctx.dkim_keys = await asyncio.to_thread(self._dkim_keys)
        self._dns = DnsServer(self._authority, self.bus, self.clock, DNS_ADDRESS, self.ports.dns)
        try:
            await self._dns.start()
        except OSError as e:
            raise LabError(listen_failure("DNS", DNS_ADDRESS, (self.ports.dns,), e)) from None
        self.endpoints.append(Endpoint("dns", "ns.lab (udp+tcp)", DNS_ADDRESS, self.ports.dns))
        # Every spool is loaded before any port opens, and deliveries start only after: a message
        # accepted meanwhile would otherwise be read back as left over and delivered twice.
        self.mtas = {host.name: Mta(host, self.ctx) for host in self.world.hosts.values()}
        replayed = 0
        for mta in self.mtas.values():
            replayed += await mta.load()
        for host in self.world.hosts.values():
            mta = self.mtas[host.name]
            try:
                await mta.start()
            except OSError as e:
                raise LabError(listen_failure(host.name, host.address,
                                              (self.ports.smtp, self.ports.submission), e)) from None
            self.endpoints += mta.endpoints
            for agent in access_agents(self.ctx, host, mta.mailbox_domains) if mta.mailbox_domains else ():
                self._agents.append(agent)
                try:
                    await agent.start()
                except OSError as e:
                    raise LabError(listen_failure(host.name, host.address, (self.ports.imap, self.ports.imaps,
                                                  self.ports.pop3, self.ports.pop3s), e)) from None
                self.endpoints += agent.endpoints
        self._control = ControlServer(socket_path(self.state.root))
        self._register_commands(self._control)
        await self._control.start()
        for mta in self.mtas.values():
            mta.queue.resume()
        self.bus.publish(Notice(self.clock.now(), "maillab", "master",
                                f"daemon started -- world {self.world.name}, {len(self.world.hosts)} hosts, "
                                f"{len(self.endpoints)} endpoints, {replayed} queued message"
                                f"{'s' if replayed != 1 else ''} replayed, pid {os.getpid()}"))

    def _dkim_keys(self) -> dict[str, DomainKeys]:
        """Each mail domain's DKIM keys (made on first run), published in its zone."""
        keys = {}
        for domain in self.world.domains.values():
            if not domain.mx or not domain.users:
                continue                      # no mailboxes here: nobody to sign for
            keys[domain.name] = found = DomainKeys.load_or_make(self.state.dkim_dir, domain.name)
            for owner, data in found.records():
                try:
                    self._authority.add_record(domain.name, owner, "TXT", data)
                except UserError:
                    pass                      # the zone publishes a record of its own there
        return keys

    def _tls(self) -> tuple[dict[str, ssl.SSLContext], OutboundTls]:
        """Each host's server TLS context and the MTAs' client side (blocking: files,
        keys made on the first run, certificates renewed when due)."""
        ca = LabCA(self.state.tls_dir)
        servers = {}
        for host in self.world.hosts.values():
            files = ca.host_files(host.name, host.address)
            servers[host.name] = server_context(files.cert, files.key)
        return servers, OutboundTls(ca.cert_path)

    def maillog_tail(self, since: int = 0) -> tuple[int, list[str]]:
        """Lines written to the maillog so far (a count), and those after the first `since`
        (the last maillog.RECENT at most); nothing before the lab starts."""
        if self._log is None:
            return 0, []
        return self._log.written, self._log.tail(since)

    async def stop(self) -> None:
        if self._control is not None:
            await self._control.stop()
        for agent in self._agents:
            await agent.stop()
        # nothing new starts anywhere, then every host's deliveries drain at once (bounded) with
        # every listener still open (a hop between two hosts needs both); then each host closes
        for mta in self.mtas.values():
            mta.queue.halt()
        await asyncio.gather(*(mta.queue.drain(STOP_DRAIN) for mta in self.mtas.values()))
        await asyncio.gather(*(mta.stop(drain=0) for mta in self.mtas.values()))
        if self._dns is not None:
            await self._dns.stop()
        if self.ctx is not None:
            self.ctx.resolver.close()
        if self.ctx is not None:
            self.bus.publish(Notice(self.clock.now(), "maillab", "master", "daemon stopped, queue kept"))
            self.ctx.directory.close()
            self.ctx.syncer.close()
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
    # Each method raises ControlError with one line for the user; the control
    # socket passes that line on, the TUI shows it.

    def queue_listing(self) -> list[dict]:
        return sorted((item for mta in self.mtas.values() for item in mta.queue.listing()),
                      key=lambda item: (item["arrival"], item["id"]))

    def queue_text(self) -> Iterator[str]:
        """The `maillab queue` listing, in pieces rendered as they are taken."""
        rows = [(mta.host.name, e) for mta in self.mtas.values() for e in mta.queue.entries.values()]
        rows.sort(key=lambda row: (row[1].arrival, row[1].id))
        return queue_chunks(rows)

    def queue_depth(self) -> int:
        return sum(len(mta.queue.entries) for mta in self.mtas.values())

    def queue_page(self, start: int = 0, count: int = 200, host: str | None = None) -> tuple[int, list[dict]]:
        """(total, rows): `count` queued messages from position `start`, host by host, each
        in arrival order; rows in `queue_listing`'s shape.  Costs O(start + count), not O(queue)."""
        mtas = [self._host(host)] if host else list(self.mtas.values())
        total = sum(len(m.queue.entries) for m in mtas)
        rows: list[dict] = []
        skip = max(start, 0)
        for m in mtas:
            n = len(m.queue.entries)
            if skip >= n:
                skip -= n
                continue
            for entry in itertools.islice(m.queue.entries.values(), skip, skip + count - len(rows)):
                rows.append(entry.to_json() | {"host": m.host.name})
            skip = 0
            if len(rows) >= count:
                break
        return total, rows

    def queue_flush(self) -> int:
        return sum(mta.queue.flush() for mta in self.mtas.values())

    async def queue_action(self, action: str, qid: str) -> str:
        """hold, release, delete or requeue one message, by queue ID."""
        if action not in QUEUE_ACTIONS:
            raise ControlError(f"unknown queue action {action!r}; choose one of {', '.join(QUEUE_ACTIONS)}")
        try:
            await getattr(self._find(qid).queue, action)(qid)
        except QueueError as e:
            raise ControlError(str(e)) from None
        return qid.upper()

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
                 "starttls": ("-" if self.ctx.server_tls.get(m.host.name) is None
                              else "stripped" if m.starttls_stripped else "offered"),
                 "services": [f"{e.service}:{e.port}" for e in self._endpoints_of(m.host.name)],
                 "domains": list(m.mailbox_domains), "queued": len(m.queue.entries)}
                for m in self.mtas.values()]

    def _endpoints_of(self, host: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.host == host]

    async def host_down(self, name: str, mode: str = "refuse") -> str:
        mta = self._host(name)
        try:
            await mta.down(mode)
        except ValueError as e:
            raise ControlError(str(e)) from None
        return mta.state

    async def host_up(self, name: str) -> str:
        mta = self._host(name)
        await mta.up()
        return mta.state

    def host_strip(self, name: str, on: bool = True) -> str:
        """Make `name` stop offering STARTTLS (or, with `on` False, offer it again)."""
        mta = self._host(name)
        mta.strip_starttls(on)
        return "STARTTLS stripped" if on else "STARTTLS offered"

    def host_chaos(self, name: str, stage: str = "RCPT", probability: float = 0.5, code: int = 451,
                   seed: int = 0, off: bool = False) -> str:
        """Make MAIL, RCPT or DATA fail at `name` with `probability`; `off` ends it."""
        mta = self._host(name)
        if off:
            mta.set_chaos(None)
            return "off"
        stage = stage.upper()
        if stage not in CHAOS_STAGES or not 400 <= code <= 599 or not 0 <= probability <= 1:
            raise ControlError(f"chaos needs a stage ({', '.join(CHAOS_STAGES)}), a 4xx or 5xx code "
                               "and a probability between 0 and 1")
        mta.set_chaos(Chaos(stage, probability, code, seed))
        return mta.chaos.describe() if mta.chaos else "off"

    def clock_status(self) -> dict:
        return {"now": self.clock.now(), "speed": self.clock.speed}

    def clock_advance(self, seconds: float) -> dict:
        try:
            self.clock.advance(seconds)
        except ValueError as e:
            raise ControlError(str(e)) from None
        return self.clock_status()

    def clock_speed(self, speed: float) -> dict:
        try:
            self.clock.set_speed(speed)
        except ValueError as e:
            raise ControlError(str(e)) from None
        return self.clock_status()

    def _authority_or_fail(self) -> Authority:
        if self._authority is None:
            raise ControlError("the lab DNS is not running")
        return self._authority

    def dns_fault(self, zone: str, mode: str | None) -> dict[str, str]:
        """Make `zone` fail (servfail, nxdomain, timeout); None or "off" heals it."""
        authority = self._authority_or_fail()
        try:
            authority.set_fault(zone, None if mode in (None, "off") else mode)
        except (KeyError, ValueError) as e:
            raise ControlError(str(e).strip("'\"")) from None
        return {z.to_text(): m for z, m in authority.faults.items()}

    def dns_faults(self) -> dict[str, str]:
        """Zones with a simulated fault (name without the final dot) -> mode."""
        return {z.to_text(omit_final_dot=True): m for z, m in self._authority_or_fail().faults.items()}

    def dns_records(self) -> list[Record]:
        return self._authority_or_fail().records()

    def dns_edit(self, zone: str, name: str, rdtype: str, old: str, new: str,
                 ttl: int | None = None) -> Record:
        """Replace one record of the lab DNS; the next look-up (and so routing) sees it."""
        return self._dns_change(lambda a: a.replace_record(zone, name, rdtype, old, new, ttl),
                                lambda r: f"{r.text} (was {old})")

    def dns_add(self, zone: str, name: str, rdtype: str, data: str, ttl: int | None = None) -> Record:
        """Add one record to the lab DNS; the next look-up (and so routing) sees it."""
        return self._dns_change(lambda a: a.add_record(zone, name, rdtype, data, ttl),
                                lambda r: f"added {r.text}")

    def dns_delete(self, zone: str, name: str, rdtype: str, data: str) -> Record:
        """Delete one record of the lab DNS; the next look-up (and so routing) no longer sees it."""
        return self._dns_change(lambda a: a.delete_record(zone, name, rdtype, data),
                                lambda r: f"deleted {r.text}")

    def _dns_change(self, change: Callable[[Authority], Record], describe: Callable[[Record], str]) -> Record:
        """Apply one zone edit; a refusal is a ControlError, a change a line in the DNS log."""
        try:
            record = change(self._authority_or_fail())
        except (KeyError, ValueError) as e:
            raise ControlError(str(e.args[0]) if e.args else str(e)) from None
        self.bus.publish(Notice(self.clock.now(), "ns.lab", "dns",
                                f"zone {record.zone} changed: {describe(record)}"))
        return record

    def mailbox_summary(self) -> list[dict]:
        """Every account with its mailbox host, folders, messages, unseen and size.

        Read from the Maildirs without the store: looking must not change them
        (the store's refresh moves new/ to cur/, which is a client's doing).
        Blocking: run it in a thread."""
        out = []
        accounts = self.ctx.directory.accounts() if self.ctx is not None else []
        for account in sorted(accounts, key=lambda a: (a.domain, a.local)):
            domain = self.world.domains.get(account.domain)
            row = {"address": account.address, "display": account.display, "enabled": account.enabled,
                   "host": domain.mailbox_host if domain else "", "folders": 0, "messages": 0,
                   "unseen": 0, "size": 0}
            root = self.state.maildir(account.domain, account.local)
            folders = [root] if (root / "cur").is_dir() else []
            if folders:
                folders += [Path(e.path) for e in os.scandir(root)
                            if name_from_dirname(e.name) is not None and (Path(e.path) / "cur").is_dir()]
            for folder in folders:
                messages, unseen, size = folder_totals(folder)
                row["folders"] += 1
                row["messages"] += messages
                row["unseen"] += unseen
                row["size"] += size
            out.append(row)
        return out

    def delivered_message(self, delivery: Delivered, scan: int = 2000) -> bytes | None:
        """The header of the copy `delivery` stored, or None if it is gone.  A live delivery
        says where it went: the message is read by its UID from that mailbox's index (a flag
        change since may have renamed the file).  One known only from the maillog (no UID)
        is looked for among the newest `scan` files of the recipient's INBOX, by its newest
        Received header naming the queue ID.  Read-only; blocking: run it in a thread."""
        if self.ctx is None:
            return None
        if delivery.uid is not None and delivery.account and delivery.mailbox:
            try:
                return self.ctx.store.user(delivery.account).folder(delivery.mailbox).read_header(delivery.uid)
            except (StoreError, OSError):
                return None                     # expunged, or its mailbox deleted, since
        account = self.ctx.directory.resolve(delivery.recipient)
        if account is None:
            return None
        folder = self.state.maildir(account.domain, account.local)
        files = sorted(_maildir_files(folder), reverse=True)[:scan]   # names start with the time
        needle = f" id {delivery.queue_id}".encode()
        for name, sub in files:
            try:
                header = read_header(folder / sub / name)
            except OSError:
                continue               # moved (flags changed) or removed meanwhile
            if needle in header:
                return header
        return None

    def _register_commands(self, control: ControlServer) -> None:
        async def queue_list(args: dict[str, Any]) -> Any:
            return self.queue_listing()

        async def queue_text(args: dict[str, Any]) -> Any:
            return Streamed(self.queue_text())

        async def queue_flush(args: dict[str, Any]) -> Any:
            return self.queue_flush()

        def per_message(action: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
            async def handler(args: dict[str, Any]) -> Any:
                return await self.queue_action(action, str(args.get("id", "")))
            return handler

        async def hosts_list(args: dict[str, Any]) -> Any:
            return self.hosts_listing()

        async def hosts_down(args: dict[str, Any]) -> Any:
            return await self.host_down(str(args.get("host", "")), str(args.get("mode", "refuse")))

        async def hosts_up(args: dict[str, Any]) -> Any:
            return await self.host_up(str(args.get("host", "")))

        async def hosts_strip(args: dict[str, Any]) -> Any:
            return self.host_strip(str(args.get("host", "")), bool(args.get("on", True)))

        async def hosts_chaos(args: dict[str, Any]) -> Any:
            return self.host_chaos(str(args.get("host", "")), str(args.get("stage", "RCPT")),
                                   float(args.get("probability", 0.5)), int(args.get("code", 451)),
                                   int(args.get("seed", 0)), bool(args.get("off")))

        async def clock_show(args: dict[str, Any]) -> Any:
            return self.clock_status()

        async def clock_advance(args: dict[str, Any]) -> Any:
            return self.clock_advance(float(args.get("seconds", 0)))

        async def clock_speed(args: dict[str, Any]) -> Any:
            return self.clock_speed(float(args.get("speed", 1)))

        async def dns_fault(args: dict[str, Any]) -> Any:
            mode = args.get("mode")
            return self.dns_fault(str(args.get("zone", "")), None if mode is None else str(mode))

        async def lab_info(args: dict[str, Any]) -> Any:
            return {"world": str(self.world.path), "port_offset": self.ports.offset}

        for name, handler in {
            "lab.info": lab_info, "queue.list": queue_list, "queue.text": queue_text, "queue.flush": queue_flush,
            **{f"queue.{action}": per_message(action) for action in QUEUE_ACTIONS},
            "hosts.list": hosts_list, "hosts.down": hosts_down, "hosts.up": hosts_up,
            "hosts.chaos": hosts_chaos, "hosts.strip": hosts_strip, "clock.show": clock_show, "clock.advance": clock_advance,
            "clock.speed": clock_speed, "dns.fault": dns_fault,
        }.items():
            control.register(name, handler)


def _maildir_files(folder: Path) -> list[tuple[str, str]]:
    """(file name, "new" or "cur") of every message in one Maildir folder."""
    out = []
    for sub in ("new", "cur"):
        try:
            names = os.listdir(folder / sub)
        except FileNotFoundError:
            continue
        out += [(name, sub) for name in names if not name.startswith(".")]
    return out
