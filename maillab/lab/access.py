"""The access agents (the course's AA) of a domain's mailbox host: IMAP and POP3.

`access_agents` builds the servers that run beside the MTA on a host that keeps
mailboxes; the lab starts and stops them with the MTAs.  Each agent has
`async start()` (raises OSError when it can not listen), `async stop()` (closes
the listener and every session) and `endpoints`.
"""

from __future__ import annotations

from typing import Protocol

from ..imap.server import ImapContext, ImapServer
from ..net.ports import Endpoint
from ..pop3.server import Pop3Context, Pop3Server
from .world import Host


class AccessAgent(Protocol):
    endpoints: list[Endpoint]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class AccessContext(ImapContext, Pop3Context, Protocol):
    """What the access agents need of the lab: what IMAP and POP3 each need."""


def access_agents(ctx: AccessContext, host: Host, domains: tuple[str, ...]) -> list[AccessAgent]:
    """The IMAP and POP3 servers for `host`, which keeps the mailboxes of `domains`."""
    return [ImapServer(ctx, host, domains), Pop3Server(ctx, host, domains)]
