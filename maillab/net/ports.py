"""The lab's port plan (docs/CONTRACT.md's defaults, shifted by one offset), its endpoints,
and the one-line reason when a port cannot be had.

A test (or a second lab) passes `offset` to move every port at once, so two labs
can share the loopback addresses.  Every host binds its own address, so the
same port number serves every host.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Ports:
    offset: int = 0

    @property
    def dns(self) -> int:
        return 1053 + self.offset

    @property
    def smtp(self) -> int:
        return 2525 + self.offset

    @property
    def submission(self) -> int:
        return 2587 + self.offset

    @property
    def smtps(self) -> int:
        return 2465 + self.offset

    @property
    def imap(self) -> int:
        return 1143 + self.offset

    @property
    def imaps(self) -> int:
        return 1993 + self.offset

    @property
    def pop3(self) -> int:
        return 1110 + self.offset

    @property
    def pop3s(self) -> int:
        return 1995 + self.offset


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One listening service of one host, as `maillab serve` prints it."""
    service: str
    host: str
    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.service:<11} {self.host:<22} {self.address}:{self.port}"


def listen_failure(what: str, address: str, ports: tuple[int, ...], error: OSError) -> str:
    """One line saying why `what` cannot listen on address:port (one of `ports`), who holds
    the port, and what to do."""
    while error.errno is None and isinstance(error.__cause__, OSError):
        error = error.__cause__   # uvloop's datagram bind wraps the errno-bearing error without one
    # the errno's own words: uvloop's strerror repeats the address in a long sentence
    reason = (os.strerror(error.errno) if error.errno else str(error)).lower()
    holders = [(port, _port_holder(address, port)) for port in ports] if error.errno == errno.EADDRINUSE else []
    port, holder = next(((p, h) for p, h in holders if h), (None, None))
    where = f"{address}:{port}" if port is not None else f"{address}:{' or '.join(map(str, ports))}"
    line = f"cannot listen for {what} on {where}: {reason}"
    if error.errno == errno.EADDRINUSE:
        line += f"; {holder} holds it" if holder else "; another program holds it, perhaps another maillab"
        line += "; run beside it with --port-offset N (like --port-offset 10000)"
    return line


def _port_holder(address: str, port: int) -> str | None:
    """"process NAME (pid N)" that has a socket bound to address:port, found through /proc; None if unseen."""
    wanted = {f"{_proc_hex(address)}:{port:04X}", f"00000000:{port:04X}"}
    inodes: set[str] = set()
    for table in ("tcp", "udp"):
        try:
            lines = Path("/proc/net", table).read_text().splitlines()[1:]
        except OSError:
            return None
        inodes |= {f[9] for f in (line.split() for line in lines) if len(f) > 9 and f[1] in wanted}
    inodes.discard("0")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    name = (proc / "comm").read_text().strip()
                    return f"process {name} (pid {proc.name})"
        except OSError:
            continue              # gone, or not ours to look into
    return None


def _proc_hex(address: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it: the 4 bytes in host (little-endian) order, hex."""
    return "".join(f"{int(part):02X}" for part in reversed(address.split(".")))
