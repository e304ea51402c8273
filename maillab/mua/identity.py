"""Who the MUA may be: every user of the world, with the host that keeps their mail.

An `Identity` is what a mail client's account settings hold: the address and
display name, the password (the world's, as `lab.toml` gives it), and the
host that serves the domain's submission, IMAP and POP3 (its first MX).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lab.world import World


@dataclass(frozen=True, slots=True)
class Identity:
    address: str
    display: str
    password: str
    host: str               # its mailbox host: submission, IMAP and POP3
    host_address: str

    @property
    def from_header(self) -> str:
        """The From a message of this identity carries: "Santa Claus <santa@northpole.org>"."""
        return f"{self.display} <{self.address}>" if self.display else self.address


def identities(world: World) -> list[Identity]:
    """Every user of the world, domain by domain in the world's order."""
    out = []
    for domain in world.domains.values():
        host = world.hosts[domain.mailbox_host]
        out += [Identity(u.address, u.display, u.password, host.name, host.address) for u in domain.users]
    return out


def find(world: World, address: str) -> Identity:
    """The identity of `address` (case-insensitive); KeyError if the world has no such user."""
    for identity in identities(world):
        if identity.address.lower() == address.lower():
            return identity
    raise KeyError(address)
