"""Markers the sans-IO protocol objects (IMAP, POP3) return from `next_event()` instead of an event."""

from __future__ import annotations


class Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = Sentinel("NEED_DATA")      # feed more bytes
PAUSED = Sentinel("PAUSED")            # an event waits for the adapter's answer
