"""The lab's port plan (SPEC.md's defaults, shifted by one offset) and its endpoints.

A test (or a second lab) passes `offset` to move every port at once, so two labs
can share the loopback addresses.  Every host binds its own address, so the
same port number serves every host.
"""

from __future__ import annotations

from dataclasses import dataclass


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
