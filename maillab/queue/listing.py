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
from typing import Iterable, Iterator

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
    return "".join(queue_chunks(rows))


def queue_chunks(rows: Iterable[tuple[str, Entry]], per_chunk: int = 2000) -> Iterator[str]:
    """The text of `format_queue` in pieces of `per_chunk` messages, each ending in a newline
    (the lab sends a piece, then lets other work run, then renders the next)."""
    lines = [HEADER]
    stamps: dict[int, str] = {}
    total = count = 0
    pad = " " * 14
    append = lines.append
    for host, entry in rows:
        count += 1
        total += entry.size
        queue, pending, next_attempt, last = entry.summary()
        arrival = stamps.get(int(entry.arrival)) or _stamp(entry.arrival, stamps)
        nxt = (stamps.get(int(next_attempt)) or _stamp(next_attempt, stamps)) if queue == "deferred" else "-"
        append(f"{entry.id:<13} {host:<21} {queue:<9} {entry.size:>7}  {arrival:<15}  {nxt:<15}  "
               f"{entry.sender or '<>'}")
        if last:
            append(f"{pad}({last})")
        for r in pending:
            append(f"{pad}{r.address}  attempts {r.attempts}" if r.attempts else pad + r.address)
        if count % per_chunk == 0:
            yield "\n".join(lines) + "\n"
            lines.clear()
    if count == 0:
        yield "Mail queue is empty\n"
        return
    append(f"-- {count} request{'s' if count != 1 else ''}, {total} bytes")
    yield "\n".join(lines) + "\n"
