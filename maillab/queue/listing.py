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

from .records import PENDING, Entry

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
    for host, entry in rows:
        count += 1
        total += entry.size
        pending = entry.pending
        queue = entry.queue
        nxt = _stamp(entry.next_attempt, stamps) if queue == "deferred" else "-"
        lines.append(f"{entry.id:<13} {host:<21} {queue:<9} {entry.size:>7}  "
                     f"{_stamp(entry.arrival, stamps):<15}  {nxt:<15}  {entry.sender or '<>'}")
        last = max(pending, key=lambda r: r.last_attempt, default=None)
        if last is not None and last.last_result:
            lines.append(f"{'':14}({last.last_result})")
        for r in pending:
            if r.status == PENDING:
                lines.append(f"{'':14}{r.address}  attempts {r.attempts}" if r.attempts else f"{'':14}{r.address}")
    if count == 0:
        return "Mail queue is empty"
    lines.append(f"-- {count} request{'s' if count != 1 else ''}, {total} bytes")
    return "\n".join(lines)
