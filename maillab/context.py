"""What every part of a running lab shares: world, clock, bus, directory, DNS, ports.

Built once by the `Lab` supervisor and handed down; nothing here owns I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from .clock import Clock
from .directory import Directory
from .dns.client import LabResolver
from .events import EventBus
from .mda import Mda
from .ports import Ports
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
    mda: Mda
    resolver: LabResolver
    session_timeout: float = 300.0       # RFC 5321 §4.5.3.2.7: server timeout, 5 minutes
    retry_delay: float = 300.0           # first retry of a deferred message (Postfix: 5 min)
