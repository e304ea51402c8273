"""The lab clock: wall time, optionally running faster or jumped ahead, shared by the whole lab.

Every time the engine stamps (Received headers, maillog lines, queue records)
and every retry it plans comes from one `Clock`, so a class can watch "retries
for several days" in minutes (`speed`) or at once (`advance`), and tests can
drive days of queue life in milliseconds.  `now()` is seconds since the epoch,
in lab time; lab time never runs backwards.  Listeners (the queue schedulers)
are told when the clock jumps or changes speed.

`persist` keeps lab time across restarts (kill -9 included): the clock's state
(lab time at a wall instant, and its speed) is written to the state folder,
temp-then-rename, whenever it jumps or changes speed; at the next start lab time
resumes as if the clock had kept running at that speed while the lab was down,
so it never runs backwards and deferred mail is not made to wait real days.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable

from .errors import UserError
from .fsutil import write_durable

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


class ClockError(UserError):
    """A saved lab clock that can not be read back."""


class Clock:
    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._real0 = time.time()
        self._lab0 = self._real0 if start is None else start
        self._listeners: list[Callable[[], None]] = []
        self._saved_at: Path | None = None

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

    def persist(self, path: Path) -> None:
        """Resume lab time saved at `path` (if any) at this clock's speed, and save it there
        from now on whenever it jumps or changes speed."""
        try:
            saved = json.loads(path.read_text())
            lab0, real0, speed = float(saved["lab0"]), float(saved["real0"]), float(saved["speed"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ClockError(f"{path}: unreadable lab clock ({e}); remove it to restart at wall time") from None
        else:
            now = time.time()
            self._lab0 = max(lab0 + (now - real0) * speed, lab0)
            self._real0 = now
        self._saved_at = path
        self._save()

    def _save(self) -> None:
        if self._saved_at is not None:
            state = {"lab0": self._lab0, "real0": self._real0, "speed": self.speed}
            write_durable(self._saved_at, json.dumps(state).encode())

    def _changed(self) -> None:
        self._save()
        for listener in self._listeners:
            listener()
