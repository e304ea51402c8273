"""The lab clock: wall time, optionally running faster or jumped ahead, shared by the whole lab.

Every time the engine stamps (Received headers, maillog lines, queue records)
and every retry it plans comes from one `Clock`, so a class can watch "retries
for several days" in minutes (`speed`) or at once (`advance`), and tests can
drive days of queue life in milliseconds.  `now()` is seconds since the epoch,
in lab time; lab time never runs backwards.  Listeners (the queue schedulers)
are told when the clock jumps or changes speed.
"""

from __future__ import annotations

import re
import time
from typing import Callable

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")


def parse_duration(text: str) -> float:
    """"90", "90s", "5m", "4h", "1d12h" -> seconds; ValueError if it is not a duration."""
    text = text.strip().lower()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2) or "s"]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"not a duration: {text!r} (try 90s, 5m, 4h, 1d)")
    return total


class Clock:
    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._real0 = time.time()
        self._lab0 = self._real0 if start is None else start
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._lab0 + (time.time() - self._real0) * self.speed

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def advance(self, seconds: float) -> None:
        """Jump the lab clock forward (fast-forward)."""
        if seconds < 0:
            raise ValueError("the lab clock only moves forward")
        self._lab0 += seconds
        self._changed()

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self._lab0, self._real0 = self.now(), time.time()
        self.speed = speed
        self._changed()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()
