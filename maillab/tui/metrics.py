"""The Monitoring panel's numbers: per-second counts from the event stream, as short histories.

The course's monitoring checklist, one `Series` each: messages in (queued) and
out (delivered) per second, queue depth, deferrals and delivery failures per
second, connections per second, the spool plus Maildirs size on disk, and
the new SMTP sessions the overload valve held back (maillab.net.admission).
`Monitor.ingest(events)` counts into the current second; `tick(depth, disk, held)`
closes it (the app calls it once a second with the sampled gauges).  Each
history keeps `HISTORY` points; `spark()` draws one as a line of block
characters.  No Textual here.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..base.events import Bounced, Deferred, Delivered, Event, Queued, SessionOpened

HISTORY = 120


@dataclass(slots=True)
class Series:
    key: str
    label: str
    unit: str
    points: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))

    @property
    def latest(self) -> float:
        return self.points[-1] if self.points else 0.0

    @property
    def peak(self) -> float:
        return max(self.points, default=0.0)


class Monitor:
    COUNTED = {Queued: "in", Delivered: "out", Deferred: "deferred", Bounced: "failed",
               SessionOpened: "connections"}

    def __init__(self) -> None:
        self.series: dict[str, Series] = {s.key: s for s in (
            Series("in", "messages in", "/s"), Series("out", "messages out", "/s"),
            Series("queue", "queue depth", ""), Series("deferred", "deferrals", "/s"),
            Series("failed", "delivery failures", "/s"), Series("connections", "connections", "/s"),
            Series("disk", "spool + Maildirs", "MB"), Series("held", "sessions held (overload)", "/s"))}
        self._counts = dict.fromkeys(self.COUNTED.values(), 0)
        self.dropped = 0          # events the TUI's subscription lost in floods
        self._held = 0            # the admission gate's running count at the last tick

    def ingest(self, events: list[Event]) -> None:
        counts, counted = self._counts, self.COUNTED
        for e in events:
            key = counted.get(type(e))
            if key is None or (isinstance(e, SessionOpened) and e.protocol == "smtp-out"):
                continue
            counts[key] += 1

    def tick(self, queue_depth: int, disk_bytes: int | None, held: int = 0) -> None:
        """Close the current second (`held`: sessions the admission gate has held so far)."""
        for key, n in self._counts.items():
            self.series[key].points.append(float(n))
            self._counts[key] = 0
        self.series["queue"].points.append(float(queue_depth))
        disk = self.series["disk"]
        if disk_bytes is not None:
            disk.points.append(disk_bytes / 1e6)
        elif disk.points:
            disk.points.append(disk.points[-1])
        self.series["held"].points.append(float(max(held - self._held, 0)))
        self._held = held


_BARS = "▁▂▃▄▅▆▇█"


def spark(points: Iterable[float], width: int) -> str:
    """The last `width` points as a text sparkline, scaled to their maximum ("▁" is zero)."""
    values = list(points)[-width:] if width > 0 else []
    top = max(values, default=0.0)
    if top <= 0:
        return _BARS[0] * len(values)
    return "".join(_BARS[min(int(v / top * (len(_BARS) - 1) + 0.5), len(_BARS) - 1)] for v in values)


def disk_usage(*roots: Path) -> int:
    """Bytes in the files under `roots` (blocking: run it in a thread)."""
    total = 0
    stack = [str(r) for r in roots]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue     # a file moved or removed while we looked
        except OSError:
            continue
    return total
