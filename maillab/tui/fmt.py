"""Small text formats the panels share: lab-clock stamps, countdowns, sizes.  No Textual."""

from __future__ import annotations

import re
import time


def stamp(when: float) -> str:
    """Lab time as HH:MM:SS (local time zone, like the maillog)."""
    return time.strftime("%H:%M:%S", time.localtime(when))


def long_stamp(when: float) -> str:
    return time.strftime("%b %d %H:%M:%S", time.localtime(when))


def duration(seconds: float) -> str:
    """90 -> "1m30s", 3700 -> "1h01m", 2 days -> "2d00h"."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def countdown(when: float | None, now: float) -> str:
    """When a retry is due, counted in lab time: "in 4m12s", "due now", "-"."""
    if not when:
        return "-"
    return "due now" if when <= now else f"in {duration(when - now)}"


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


_CONNECT_TRY = re.compile(r"connect to (\S+): (.+)")


def brief_reason(reason: str) -> str:
    """A deferral reason for a narrow table cell, the cause first: "4.4.1 connect to
    smtp1.syr.edu[127.0.0.1]:25: Connection refused" → "4.4.1 Connection refused
    (smtp1.syr.edu[127.0.0.1]:25)", each MX's try so ("; " between them); the rest as is."""
    code, _, text = reason.partition(" ") if reason[:1].isdigit() else ("", "", reason)
    tries = [(f"{m[2]} ({m[1]})" if (m := _CONNECT_TRY.fullmatch(part)) else part) for part in text.split("; ")]
    return " ".join(filter(None, (code, "; ".join(tries))))
