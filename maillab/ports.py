"""The lab's port plan: SPEC.md's defaults, shifted by one offset.

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
