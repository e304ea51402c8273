"""The queue as `maillab queue` prints it: a mailq-like table, one block per message.

    QUEUE ID      HOST                  STATE        SIZE  ARRIVAL          NEXT ATTEMPT     SENDER
    G1B7KQ0MZ4XN  smtp2.syr.edu         deferred      412  Nov 23 10:43:30  Nov 23 10:48:30  santa@northpole.org
                  (4.4.1 connect to 127.0.0.1:2525: Connection refused)
                  mafudge@syr.edu  attempts 1
    -- 1 request, 412 bytes

Built straight from the queue records (no intermediate JSON), so the lab can
render a queue of 100,000 messages well within a second.
"""

from __future__ import annotations

import time
from typing import Iterable

from .records import Entry

HEADER = (f"{'QUEUE ID':<13} {'HOST':<21} {'STATE':<9} {'SIZE':>7}  {'ARRIVAL':<15}  "
          f"{'NEXT ATTEMPT':<15}  SENDER")


def _stamp(when: float, cache: dict[int, str]) -> str:
    second = int(when)
    text = cache.get(second)
    if text is None:
        text = cache[second] = time.strftime("%b %d %H:%M:%S", time.localtime(second))
    return text


def format_queue(rows: Iterable[tuple[str, Entry]]) -> str:
    lines = [HEADER]
    stamps: dict[int, str] = {}
    total = count = 0
    pad = " " * 14
    for host, entry in rows:
        count += 1
        total += entry.size
        queue, pending, next_attempt, last = entry.summary()
        nxt = _stamp(next_attempt, stamps) if queue == "deferred" else "-"
        lines.append(f"{entry.id:<13} {host:<21} {queue:<9} {entry.size:>7}  "
                     f"{_stamp(entry.arrival, stamps):<15}  {nxt:<15}  {entry.sender or '<>'}")
        if last:
            lines.append(f"{pad}({last})")
        for r in pending:
            lines.append(f"{pad}{r.address}  attempts {r.attempts}" if r.attempts else pad + r.address)
    if count == 0:
        return "Mail queue is empty"
    lines.append(f"-- {count} request{'s' if count != 1 else ''}, {total} bytes")
    return "\n".join(lines)
