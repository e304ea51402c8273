"""What every part of a running lab shares: world, clock, bus, directory, DNS, ports, TLS.

Built once by the `Lab` supervisor and handed down; nothing here owns I/O.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from ..base.clock import Clock
from ..base.events import EventBus
from ..base.syncer import Syncer
from ..auth.dkim_keys import DomainKeys
from ..dns.client import LabResolver
from ..mta.mda import Mda
from ..net.admission import Admission
from ..net.authguard import AuthGuard
from ..net.ports import Ports
from ..smtp.outbound_tls import OutboundTls
from ..queue.records import RetryPolicy
from ..store import MailStore
from .directory import Directory
from .state import StateDir
from .world import World


@dataclass
class LabContext:
    world: World
    state: StateDir
    ports: Ports
    clock: Clock
    bus: EventBus
    directory: Directory
    store: MailStore
    mda: Mda
    resolver: LabResolver
    syncer: Syncer
    session_timeout: float = 300.0       # RFC 5321 §4.5.3.2.7: server timeout, 5 minutes
    retry: RetryPolicy = RetryPolicy()
    smtp_timeout: float = 30.0           # each read of an outbound SMTP hop
    greylist_delay: float = 60.0         # lab seconds before a greylisted triple is let through
    admission: Admission = field(default_factory=Admission)   # new SMTP sessions pass it first
    auth_guard: AuthGuard = field(default_factory=AuthGuard)  # failed logins per client address
    # TLS (net/tls.py, certificates by lab/ca.py): each host's server side, by host name, and
    # the client side of outbound SMTP between the lab's MTAs (smtp/outbound_tls.py)
    server_tls: dict[str, ssl.SSLContext] = field(default_factory=dict)
    outbound_tls: OutboundTls | None = None
    # DKIM (auth/dkim_keys.py): each mail domain's signing keys, their public halves in the lab DNS
    dkim_keys: dict[str, DomainKeys] = field(default_factory=dict)
