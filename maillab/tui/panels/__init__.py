"""The TUI's tabs, in the order the number keys select them."""

from __future__ import annotations

from ..panel import Panel
from .dialogues import DialoguesPanel
from .dns import DnsPanel
from .hosts import HostsPanel
from .journey import JourneyPanel
from .mailboxes import MailboxesPanel
from .maillog import LogPanel
from .monitor import MonitorPanel
from .queue import QueuePanel

PANELS: tuple[type[Panel], ...] = (DialoguesPanel, QueuePanel, HostsPanel, DnsPanel, JourneyPanel,
                                   MailboxesPanel, LogPanel, MonitorPanel)
