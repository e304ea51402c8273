"""The lab clock: wall time, optionally running faster, shared by the whole lab.

Every time the engine stamps (Received headers, maillog lines, queue records)
comes from one `Clock`, so tests can inject a fake one and a class can watch
days pass in minutes.  `now()` is seconds since the epoch in lab time.
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._real0 = time.time()
        self._lab0 = self._real0 if start is None else start

    def now(self) -> float:
        if self.speed == 1.0 and self._lab0 == self._real0:
            return time.time()
        return self._lab0 + (time.time() - self._real0) * self.speed

    def advance(self, seconds: float) -> None:
        """Jump the lab clock forward (fast-forward)."""
        self._lab0 += seconds
