"""Worlds: the domains, hosts, users and DNS zones a lab runs.

A world is a folder with `lab.toml` and one BIND-syntax zone file per domain
(see `worlds/default`).  `load_world(path)` reads and validates it and returns
an immutable `World`; any mistake raises `WorldError` with one line that names
the file and, where it can be known, the line.

Invariants of a loaded world: host names and addresses are unique; every MX
target is a host of the world and its A record agrees with `lab.toml`; every
user address is unique and every alias points at a user of its domain.  The
reverse zone (`in-addr.arpa`, PTR for every host) is made here from the hosts,
so it can never disagree with them.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from ..base.clock import parse_duration
from ..base.errors import UserError
from ..queue.records import RetryPolicy

# The defaults of ConnectionLimits (maillab/net/admission.py), which lab.toml's [lab] table may change.
PER_CLIENT = 500        # every lab host and benchmark connects from 127.0.0.x: generous by default
PER_SERVICE = 1000
PREAUTH_TIMEOUT = 60    # seconds an IMAP/POP3 client may idle before logging in

DEFAULT_PASSWORD = "maillab"


class WorldError(UserError):
    """A world folder that can not be loaded; str() is one line for the user."""


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class User:
    local: str
    domain: str
    display: str = ""
    password: str = DEFAULT_PASSWORD

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    mx: tuple[tuple[int, str], ...]       # (preference, host name), best first
    users: tuple[User, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()   # (local part, target local part)
    # how other MTAs send to this domain (smtp/outbound_tls.py), "" for the world's level:
    # Postfix's smtp_tls_policy_maps entry for it
    smtp_tls_security_level: str = ""

    @property
    def mailbox_host(self) -> str:
        """The host that keeps the mailboxes: the most preferred MX."""
        return self.mx[0][1]


@dataclass(frozen=True)
class World:
    name: str
    description: str
    path: Path
    hosts: dict[str, Host]
    domains: dict[str, Domain]
    zones: dict[str, dns.zone.Zone]        # origin (absolute, with dot) -> zone
    reject_unknown_recipients: bool = False
    message_size_limit: int = 10 * 1024 * 1024
    connections_per_client: int = PER_CLIENT       # per service of a host (maillab/net/admission.py)
    connections_per_service: int = PER_SERVICE
    preauth_timeout: int = PREAUTH_TIMEOUT         # seconds an IMAP/POP3 client may idle before login
    smtp_line_endings: str = "lenient"             # lenient, strict or pedantic (maillab/smtp/protocol.py)
    sender_login_match: bool = False               # MAIL FROM must be the logged-in user's own address
    # true: logins (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, POP3 USER/PASS/AUTH) work before TLS too,
    # for the eavesdropping lesson; false (the default): only after STARTTLS/STLS or on a TLS port
    # (RFC 8314, Postfix's smtpd_tls_auth_only, Dovecot's disable_plaintext_auth, which IMAP and
    # POP3 follow in letting a client on the server's own address log in before TLS)
    auth_over_plaintext: bool = False
    # how MTAs send to each other (none, may, encrypt, verify: smtp/outbound_tls.py), unless the
    # destination domain says otherwise; "may" trusts the lab CA: opportunistic TLS, as Postfix's
    smtp_tls_security_level: str = "may"
    retry: RetryPolicy = RetryPolicy()
    _by_address: dict[str, Host] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_address.update({h.address: h for h in self.hosts.values()})

    def host_at(self, address: str) -> Host | None:
        return self._by_address.get(address)

    def mailbox_domains(self, host: str) -> list[Domain]:
        """Domains whose mailboxes (and submission, IMAP, POP3) live on `host`."""
        return [d for d in self.domains.values() if d.mailbox_host == host]

    def tls_level_for(self, domain: str) -> str:
        """The TLS security level for mail to `domain`: its own, else the world's."""
        d = self.domains.get(domain.lower())
        return (d.smtp_tls_security_level if d is not None else "") or self.smtp_tls_security_level

    def mx_preference(self, domain: str, host: str) -> int | None:
        d = self.domains.get(domain)
        if d is None:
            return None
        for pref, name in d.mx:
            if name == host:
                return pref
        return None


def default_world_path() -> Path:
    return Path(str(resources.files("maillab.worlds") / "default"))


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return 1


def _a_record_line(text: str, host: str, relative: str, addresses: set[str]) -> int:
    """The line of the A record of `host` (written relative or absolute) giving one of `addresses`."""
    owners = {relative, host + "."}
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split(";")[0].split()
        if tokens and tokens[0] in owners and "A" in (t.upper() for t in tokens[1:]) \
                and any(a in tokens for a in addresses):
            return number
    return _line_of(text, relative)


def _load_zone(path: Path, origin: str) -> dns.zone.Zone:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise WorldError(f"{path}: cannot read zone file: {e.strerror}") from None
    try:
        return dns.zone.from_text(text, origin=origin, relativize=False, filename=str(path))
    except dns.exception.SyntaxError as e:
        raise WorldError(_zone_error(path, text, origin, str(e))) from None
    except dns.exception.DNSException as e:
        raise WorldError(f"{path}: {e}") from None


def _zone_error(path: Path, text: str, origin: str, message: str) -> str:
    """dnspython says "file:N: what", with N one past the line when the error is in the
    record data (it has read the line ending by then): find the real line and show it."""
    prefix = f"{path}:"
    head, _, what = message[len(prefix):].partition(": ") if message.startswith(prefix) else ("", "", message)
    if not head.isdigit():
        return f"{path}: {message}"
    lines = text.splitlines()
    number = int(head)
    if number > 1:
        try:
            dns.zone.from_text("\n".join(lines[:number - 1]) + "\n", origin=origin, relativize=False)
        except dns.exception.SyntaxError:
            number -= 1       # the first N-1 lines already fail: the culprit is line N-1
        except dns.exception.DNSException:
            pass
    shown = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    return f"{path}:{number}: {what}" + (f" ({shown})" if shown else "")


def _positive_int(table: dict, key: str, default: int, fail: Callable[[str, str], WorldError],
                  unit: str = "bytes") -> int:
    """The setting `key` of a lab.toml table, which must be a whole number above 0."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise fail(key, f"[lab] {key} = {value!r}: expected a whole number of {unit} above 0, "
                        f"like {default}")
    return value


def _flag(table: dict, key: str, fail: Callable[[str, str], WorldError]) -> bool:
    """The setting `key` of the [lab] table, which must be true or false (false if absent)."""
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise fail(key, f"[lab] {key} = {value!r}: expected true or false")
    return value


TLS_LEVELS = ("may", "none", "encrypt", "verify")    # Postfix's smtp_tls_security_level values, default first


def _choice(table: dict, key: str, choices: tuple[str, ...], fail: Callable[[str, str], WorldError]) -> str:
    """One of `choices` (the first when the key is absent)."""
    value = table.get(key, choices[0])
    if value not in choices:
        raise fail(key, f"[lab] {key} = {value!r}: expected one of {', '.join(choices)}")
    return str(value)


def _reverse_zone(hosts: dict[str, Host]) -> dns.zone.Zone:
    lines = ["$TTL 300",
             "@ IN SOA ns.in-addr.arpa. hostmaster.in-addr.arpa. ( 1 3600 600 604800 300 )",
             "@ IN NS localhost."]
    for host in hosts.values():
        lines.append(f"{ipaddress.ip_address(host.address).reverse_pointer}. IN PTR {host.name}.")
    return dns.zone.from_text("\n".join(lines) + "\n", origin="in-addr.arpa.", relativize=False)


def load_world(path: Path | str | None = None) -> World:
    """Load and validate the world folder at `path` (the default world if None)."""
    folder = Path(path) if path is not None else default_world_path()
    toml_path = folder / "lab.toml"
    try:
        text = toml_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorldError(f"{toml_path}: no such file (a world folder needs lab.toml)") from None
    except OSError as e:
        raise WorldError(f"{toml_path}: cannot read: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise WorldError(f"{toml_path}: {e}") from None

    def fail(needle: str, message: str) -> WorldError:
        return WorldError(f"{toml_path}:{_line_of(text, needle)}: {message}")

    lab = data.get("lab", {})
    hosts: dict[str, Host] = {}
    seen_addresses: dict[str, str] = {}
    for entry in data.get("host", []):
        name = str(entry.get("name", "")).lower().rstrip(".")
        address = str(entry.get("address", ""))
        if not name:
            raise fail("[[host]]", "a [[host]] has no name")
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise fail(name, f"host {name}: address {address!r} is not an IPv4 address") from None
        if name in hosts:
            raise fail(name, f"host {name} is declared twice")
        if address in seen_addresses:
            raise fail(address, f"address {address} is reused by {seen_addresses[address]} and {name}")
        seen_addresses[address] = name
        hosts[name] = Host(name, address)
    if not hosts:
        raise WorldError(f"{toml_path}: the world declares no [[host]]")

    zones: dict[str, dns.zone.Zone] = {}
    zone_files: dict[str, Path] = {}

    def add_zone(origin: str, filename: str, needle: str) -> dns.zone.Zone:
        if not filename:
            raise fail(needle, f"zone {origin} names no zone file")
        origin_abs = origin.rstrip(".") + "."
        if origin_abs in zones:
            raise fail(needle, f"zone {origin} is declared twice")
        zone_path = folder / filename
        zones[origin_abs] = _load_zone(zone_path, origin_abs)
        zone_files[origin_abs] = zone_path
        return zones[origin_abs]

    domains: dict[str, Domain] = {}
    for entry in data.get("domain", []):
        dname = str(entry.get("name", "")).lower().rstrip(".")
        if not dname:
            raise fail("[[domain]]", "a [[domain]] has no name")
        if dname in domains:
            raise fail(f'"{dname}"', f"domain {dname} is declared twice")
        zone = add_zone(dname, str(entry.get("zone", "")), f'"{dname}"')
        zone_path = zone_files[dname + "."]
        zone_text = zone_path.read_text(encoding="utf-8")
        mx: list[tuple[int, str]] = []
        rdataset = zone.get_rdataset(dname + ".", dns.rdatatype.MX)
        for rdata in rdataset or ():
            target = rdata.exchange.to_text(omit_final_dot=True).lower()
            if target not in hosts:
                raise WorldError(f"{zone_path}:{_line_of(zone_text, rdata.exchange.to_text())}: "
                                 f"MX {target} is not a [[host]] of {toml_path.name}")
            mx.append((rdata.preference, target))
        if not mx:
            raise WorldError(f"{zone_path}: domain {dname} has no MX record at its apex")
        mx.sort()
        users: list[User] = []
        seen_users: set[str] = set()
        for u in entry.get("users", []):
            local = str(u.get("name", "")).lower()
            if not local or "@" in local or "/" in local or local.startswith("."):
                raise fail(f'"{local}"', f"domain {dname}: bad user name {local!r}")
            if local in seen_users:
                raise fail(f'"{local}"', f"duplicate user {local}@{dname}")
            seen_users.add(local)
            users.append(User(local, dname, str(u.get("display", "")),
                              str(u.get("password", DEFAULT_PASSWORD))))
        aliases: list[tuple[str, str]] = []
        for alias, target in dict(entry.get("aliases", {})).items():
            alias, target = alias.lower(), str(target).lower()
            if alias in seen_users:
                raise fail(alias, f"alias {alias}@{dname} reuses the address of a user")
            if target not in seen_users:
                raise fail(alias, f"alias {alias}@{dname} points at {target}, not a user of {dname}")
            aliases.append((alias, target))
        level = str(entry.get("smtp_tls_security_level", ""))
        if level and level not in TLS_LEVELS:
            raise fail("smtp_tls_security_level", f"domain {dname}: smtp_tls_security_level = {level!r}: "
                                                  f"expected one of {', '.join(TLS_LEVELS)}")
        domains[dname] = Domain(dname, tuple(mx), tuple(users), tuple(aliases), level)

    for entry in data.get("zone", []):
        zname = str(entry.get("name", "")).lower()
        add_zone(zname, str(entry.get("file", "")), f'"{zname}"')

    # Every host must be reachable by name, at the address lab.toml gives it.
    for host in hosts.values():
        found = False
        for origin, zone in zones.items():
            if not (host.name + ".").endswith("." + origin) and host.name + "." != origin:
                continue
            rdataset = zone.get_rdataset(host.name + ".", dns.rdatatype.A)
            if rdataset is None:
                continue
            found = True
            addresses = {r.address for r in rdataset}
            if host.address not in addresses:
                text_z = zone_files[origin].read_text(encoding="utf-8")
                short = host.name[: -len(origin)].rstrip(".") if host.name.endswith(origin[:-1]) else host.name
                raise WorldError(f"{zone_files[origin]}:{_a_record_line(text_z, host.name, short, addresses)}: "
                                 f"A record of {host.name} is {', '.join(sorted(addresses))}, "
                                 f"but lab.toml gives {host.address}")
        if not found:
            raise fail(host.name, f"host {host.name} has no A record in any zone of the world")

    zones["in-addr.arpa."] = _reverse_zone(hosts)
    queue = data.get("queue", {})
    try:
        retry = RetryPolicy(**{key: parse_duration(str(queue[key])) for key in
                               ("first_retry", "max_backoff", "lifetime", "warn_after") if key in queue})
    except ValueError as e:
        raise fail("[queue]", f"[queue]: {e}") from None
    unknown = set(queue) - {"first_retry", "max_backoff", "lifetime", "warn_after"}
    if unknown:
        raise fail("[queue]", f"[queue]: unknown setting {sorted(unknown)[0]}")
    return World(
        name=str(lab.get("name", folder.name)),
        description=str(lab.get("description", "")),
        path=folder,
        hosts=hosts,
        domains=domains,
        zones=zones,
        reject_unknown_recipients=_flag(lab, "reject_unknown_recipients", fail),
        message_size_limit=_positive_int(lab, "message_size_limit", 10 * 1024 * 1024, fail),
        connections_per_client=_positive_int(lab, "connections_per_client", PER_CLIENT, fail, "connections"),
        connections_per_service=_positive_int(lab, "connections_per_service", PER_SERVICE, fail, "connections"),
        preauth_timeout=_positive_int(lab, "preauth_timeout", PREAUTH_TIMEOUT, fail, "seconds"),
        smtp_line_endings=_choice(lab, "smtp_line_endings", ("lenient", "strict", "pedantic"), fail),
        sender_login_match=_flag(lab, "sender_login_match", fail),
        auth_over_plaintext=_flag(lab, "auth_over_plaintext", fail),
        smtp_tls_security_level=_choice(lab, "smtp_tls_security_level", TLS_LEVELS, fail),
        retry=retry,
    )
