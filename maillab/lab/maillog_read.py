"""Reading the maillog back: its lines as the events that wrote them, found from the end.

`parse_line` is the inverse of `maillog.format_event`: a line of
`<state>/log/maillog` becomes the `Queued`, `Delivered`, `Deferred`, `Bounced`,
`Removed` or `DnsQuery` it was written from; any other well-formed line (a
connection, a start, a notice) becomes a `Notice` with the line's own text.
A line that is not in the maillog's shape gives None.  The maillog's stamps
have no year and whole seconds only: the year is the one that puts the stamp
nearest a reference time (the file's modification time).

`find_queue_ids(path, qids, addresses)` gathers what the maillog says of a
message's hops (its queue IDs): every line naming one of them, the connection
that brought each one in (the last "connect from CLIENT" at that host before
it was queued) and the DNS queries that host's address made meanwhile.  DNS
lines carry no queue ID: they are picked by client address and time window,
like the TUI's live record does, so another message handled by the same host
in the same seconds shows up too.  The events come in the file's order, their
times a microsecond apart within a second so that sorting by time keeps it.
`recent_deliveries(path, limit)` lists the last final deliveries (relay=local,
status=sent).

Bounded: the files are read from the end in `CHUNK` blocks, newest first —
`maillog`, then plain rotations `maillog.1`, `maillog.2`, ... (compressed
rotations are not read) — at most `budget` bytes in all, and the scan stops
once every queue ID's first line ("queue active") is found.  Memory holds a
chunk, the lines found and the neighbourhoods re-read around them.  A line
still being written (no newline yet) at the end of the file is left out.
"""

from __future__ import annotations

import functools
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator

from ..base.events import Bounced, Deferred, Delivered, DnsQuery, Event, Notice, Queued, Removed

CHUNK = 1 << 20                   # bytes read at a time, from the end
DEFAULT_BUDGET = 256 << 20        # bytes read at most by one search (all files together): ~0.3 s
MAX_LINE = 64 << 10               # a "line" longer than this is not a maillog line: skipped
ROTATIONS = 9                     # maillog.1 ... maillog.9
LOOKBACK = 256 << 10              # bytes re-read before a hop's first line: its connection, PTR look-up
NEAR = 64 << 10                   # ...before each of its lines when the hop spans more than SPAN
SPAN = 4 << 20                    # a hop whose lines are further apart (deferred for days) is re-read in parts
MAX_DNS = 200                     # DNS lines kept per hop
SLACK = 1.0                       # seconds around a hop's window, as the live record has it

_MONTHS = {m: n for n, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                        "Oct", "Nov", "Dec"), 1)}
_LINE = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\S+) ([^\s\[\]]+)\[\d+\]: (.*)")
_QID = re.compile(r"([0-9A-Z]{6,24}): (.*)")
_QUEUED = re.compile(r"(?:client=(.*?), )?from=<(.*?)>, size=(\d+), nrcpt=\d+ to=(.*) \(queue active\)")
_STATUS = re.compile(r"to=<(.*?)>, relay=(.*?), delay=([\d.]+), dsn=([\d.]+), "
                     r"status=(sent|deferred|bounced) \((.*)\)")
_DNS = re.compile(r"query from (\S+) \((\w+)\): (\S+) IN (\S+) -> (\S+), (\d+) answers?")
_CONNECT = re.compile(r"connect from (\S+) \(")
_STATUS_KIND: dict[str, type[Delivered | Deferred | Bounced]] = {
    "sent": Delivered, "deferred": Deferred, "bounced": Bounced}


@functools.lru_cache(maxsize=4096)     # a busy log repeats each second's stamp; `ref` is per file
def _when(month: str, day: str, hh: str, mm: str, ss: str, ref: float) -> float | None:
    """Local time of a year-less stamp: the year that puts it nearest `ref`."""
    mon = _MONTHS.get(month)
    if mon is None:
        return None
    year = time.localtime(ref).tm_year
    best: float | None = None
    for y in (year - 1, year, year + 1):
        try:
            t = time.mktime((y, mon, int(day), int(hh), int(mm), int(ss), 0, 0, -1))
        except (OverflowError, ValueError):
            continue
        if time.localtime(t)[:3] != (y, mon, int(day)):      # Feb 30 and the like
            continue
        if best is None or abs(t - ref) < abs(best - ref):
            best = t
    return best


def parse_line(line: str, ref: float | None = None) -> Event | None:
    """One maillog line (without its newline) as the event it was written from; None if it is
    not in the maillog's shape.  `ref` (default: now) picks the year of the stamp."""
    m = _LINE.fullmatch(line)
    if m is None:
        return None
    when = _when(*m.group(1, 2, 3, 4, 5), ref=time.time() if ref is None else ref)
    if when is None:
        return None
    host, program, text = m.group(6), m.group(7).removeprefix("maillab/"), m.group(8)
    if program == "dns" and text.startswith("query from "):
        d = _DNS.fullmatch(text)
        if d:
            return DnsQuery(when, d.group(1), d.group(2), d.group(3), d.group(4), d.group(5), int(d.group(6)))
    q = _QID.fullmatch(text)
    if q is None:
        return Notice(when, host, program, text)
    qid, rest = q.group(1), q.group(2)
    if program == "qmgr" and rest == "removed":
        return Removed(when, host, qid)
    if program == "qmgr" and rest.endswith("(queue active)"):
        s = _QUEUED.fullmatch(rest)
        if s:
            rcpts = tuple(r.strip("<>") for r in s.group(4).split(">,<"))
            return Queued(when, host, qid, s.group(2), rcpts, int(s.group(3)), s.group(1) or "")
    if "status=" in rest:
        s = _STATUS.fullmatch(rest)
        if s:
            kind = _STATUS_KIND[s.group(5)]
            return kind(when, host, qid, s.group(1), s.group(2), float(s.group(3)), s.group(4), s.group(6))
    return Notice(when, host, program, rest, qid)


# --- reading from the end ---------------------------------------------------------------

def rotation(path: Path, n: int) -> Path:
    """The maillog's `n`th rotation (1: the newest), as `maillog.MailLog` names it."""
    return path.with_name(f"{path.name}.{n}")


def log_files(path: Path) -> list[Path]:
    """The maillog and its plain rotations, newest first (those that exist)."""
    candidates = [path] + [rotation(path, n) for n in range(1, ROTATIONS + 1)]
    return [p for p in candidates if p.is_file()]


@dataclass(slots=True)
class _Scan:
    budget: int
    read: int = 0                 # bytes read so far
    exhausted: bool = False       # stopped by the budget before the start of the oldest file


def _blocks(paths: Iterable[Path], scan: _Scan) -> Iterator[tuple[Path, int, bytes]]:
    """(file, offset, whole lines) blocks from the end of each file towards its start, newest
    file first, while `scan.budget` lasts.  A last line without its newline is left out."""
    for path in paths:
        try:
            f = open(path, "rb")
        except OSError:
            continue
        with f:
            end = os.fstat(f.fileno()).st_size          # what is there now; appends go unread
            if end == 0:
                continue
            f.seek(end - 1)
            if f.read(1) != b"\n":                       # still being written: drop the partial line
                f.seek(max(0, end - MAX_LINE))
                tail = f.read(end - max(0, end - MAX_LINE))
                cut = tail.rfind(b"\n")
                end = end - len(tail) + cut + 1 if cut >= 0 else max(0, end - MAX_LINE)
            carry = b""                                  # the start of a line whose beginning is further up
            while end > 0:
                if scan.read >= scan.budget:
                    scan.exhausted = True
                    return
                start = max(0, end - min(CHUNK, scan.budget - scan.read))
                f.seek(start)
                data = f.read(end - start) + carry
                scan.read += end - start
                end = start
                if start > 0:
                    cut = data.find(b"\n")
                    if cut < 0:                          # no line break in a whole chunk
                        carry = data if len(data) <= MAX_LINE else b""     # too long: not a maillog line
                        continue
                    carry, data = data[:cut + 1], data[cut + 1:]
                    if len(carry) > MAX_LINE:
                        carry = b""
                    start += cut + 1
                else:
                    carry = b""
                if data:
                    yield path, start, data


def _lines_with(data: bytes, needle: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset in data, line) of every line of `data` that contains `needle`."""
    pos = data.find(needle)
    while pos >= 0:
        start = data.rfind(b"\n", 0, pos) + 1
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        yield start, data[start:end]
        pos = data.find(needle, end)


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{max(1, round(n / 1024))} KB"


def _note(searched: int, exhausted: bool, files: list[Path], what: str) -> str:
    where = f"{len(files)} files" if len(files) > 1 else "1 file"
    if exhausted:
        return f"{what}; searched the last {_size(searched)} of the maillog ({where}), the limit: older lines not read"
    return f"{what}; searched the last {_size(searched)} of the maillog ({where})"


# --- a message's hops ---------------------------------------------------------------------

@dataclass(slots=True)
class Found:
    """What the maillog says of some queue IDs."""
    events: list[Event] = field(default_factory=list)    # oldest first (file order)
    found: set[str] = field(default_factory=set)         # queue IDs with at least one line
    dns_capped: int = 0                                  # DNS lines left out (MAX_DNS per hop)
    read: int = 0                                        # bytes read, searching and re-reading
    exhausted: bool = False                              # the budget ran out before all were found
    note: str = ""                                       # one line for the user: what was read


@dataclass(slots=True)
class _Hop:
    qid: str
    host: str = ""
    client: str = ""                                     # "name[ip]" from the queued line
    lines: list[tuple[Path, int, int, Event]] = field(default_factory=list)   # file, offset, end, event
    queued: bool = False


def find_queue_ids(path: Path, qids: Iterable[str], addresses: dict[str, str],
                   budget: int = DEFAULT_BUDGET) -> Found:
    """The maillog's lines for these queue IDs, with each hop's connection and DNS queries.

    `addresses` maps host names to their IP (the DNS lines name the client by address).
    Blocking: run it in a thread."""
    wanted = {q: _Hop(q) for q in dict.fromkeys(q for q in qids if q)}
    files = log_files(path)
    scan = _Scan(budget)
    needles = {q: q.encode() for q in wanted}
    seen: set[tuple[Path, int]] = set()
    for file, base, data in _blocks(files, scan):
        ref = _mtime(file)
        for needle in needles.values():
            for offset, raw in _lines_with(data, needle):
                if (file, base + offset) in seen:
                    continue
                seen.add((file, base + offset))
                e = parse_line(_decode(raw), ref)
                hop = wanted.get(getattr(e, "queue_id", ""))
                if e is None or hop is None:
                    continue                               # another hop's reply naming this ID, or junk
                hop.lines.append((file, base + offset, base + offset + len(raw), e))
                hop.host = hop.host or getattr(e, "host", "")
                if isinstance(e, Queued):
                    hop.queued, hop.client = True, e.client
        if all(h.queued for h in wanted.values()):
            break
    result = Found(found={q for q, h in wanted.items() if h.lines}, exhausted=scan.exhausted)
    searched = scan.read
    order = {f: n for n, f in enumerate(reversed(files))}               # oldest file first
    events: list[tuple[Path, int, Event]] = []
    for hop in wanted.values():
        if not hop.lines:
            continue
        hop.lines.sort(key=lambda x: (order[x[0]], x[1]))
        events += [(f, o, e) for f, o, _end, e in hop.lines]
        events += _around(hop, addresses.get(hop.host, ""), result, scan)
    unique = {(f, o): e for f, o, e in events}
    ordered = [e for (_f, _o), e in sorted(unique.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]
    # stamps are whole seconds: a microsecond per line keeps the file's order through a sort by time
    result.events = [replace(e, time=e.time + n * 1e-6) for n, e in enumerate(ordered)]
    result.read = scan.read
    result.note = _note(searched, scan.exhausted, files, f"found {len(result.found)} of {len(wanted)} queue IDs") \
        if files else f"no maillog at {path}"
    return result


def _around(hop: _Hop, ip: str, result: Found, scan: _Scan) -> list[tuple[Path, int, Event]]:
    """Re-read the neighbourhood of a hop's lines: the connection that brought it in (last
    "connect from CLIENT" at its host before it was queued) and the DNS queries its host
    made from just before that until its last line (SLACK seconds either side)."""
    out: list[tuple[Path, int, Event]] = []
    by_file: dict[Path, list[tuple[int, int, Event]]] = {}
    for f, o, end, e in hop.lines:
        by_file.setdefault(f, []).append((o, end, e))
    first_time = min(e.time for *_x, e in hop.lines)
    last_time = max(e.time for *_x, e in hop.lines)
    connect: tuple[Path, int, Notice] | None = None
    dns: list[tuple[Path, int, DnsQuery]] = []
    for f, lines in by_file.items():
        first, last = lines[0][0], lines[-1][1]
        if last - first <= SPAN:
            spans = [(max(0, first - LOOKBACK), last)]
        else:
            spans = [(max(0, o - (LOOKBACK if n == 0 else NEAR)), end) for n, (o, end, _e) in enumerate(lines)]
        queued_at = next((o for o, _end, e in lines if isinstance(e, Queued)), None)
        ref = _mtime(f)
        for start, end, data in _read_spans(f, spans, scan):
            for offset, raw in _lines_with(data, b"connect from "):
                at = start + offset
                if queued_at is None or at >= queued_at or not hop.client:
                    continue
                e = parse_line(_decode(raw), ref)
                m = _CONNECT.match(e.text) if isinstance(e, Notice) and e.host == hop.host else None
                if m and m.group(1) == hop.client and (connect is None or at > connect[1]):
                    connect = (f, at, e)   # type: ignore[assignment]
            if not ip:
                continue
            for offset, raw in _lines_with(data, f"query from {ip}:".encode()):
                e = parse_line(_decode(raw), ref)
                if isinstance(e, DnsQuery) and e.client.rpartition(":")[0] == ip:
                    dns.append((f, start + offset, e))
    begin = first_time
    if connect is not None:
        out.append((connect[0], connect[1], replace(connect[2], queue_id=hop.qid)))
        begin = min(begin, connect[2].time)
    picked = [(f, o, e) for f, o, e in dns if begin - SLACK <= e.time <= last_time + SLACK]
    result.dns_capped += max(0, len(picked) - MAX_DNS)
    return out + picked[:MAX_DNS]


def _read_spans(path: Path, spans: list[tuple[int, int]], scan: _Scan) -> Iterator[tuple[int, int, bytes]]:
    """The byte ranges of `path` (merged where they overlap), each from its first whole line."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        for start, end in merged:
            f.seek(start)
            data = f.read(end - start)
            scan.read += len(data)
            if start > 0:                       # the first line is cut: start at the next one
                cut = data.find(b"\n")
                if cut < 0:
                    continue
                start, data = start + cut + 1, data[cut + 1:]
            yield start, end, data


# --- the last final deliveries ------------------------------------------------------------

def recent_deliveries(path: Path, limit: int, budget: int = DEFAULT_BUDGET) -> tuple[list[Delivered], str]:
    """The last `limit` deliveries into a mailbox (relay=local, status=sent), oldest first,
    and a note on what was read."""
    files = log_files(path)
    scan = _Scan(budget)
    newest_first: list[Delivered] = []
    for file, _base, data in _blocks(files, scan):
        ref = _mtime(file)
        for _offset, raw in reversed(list(_lines_with(data, b", relay=local, "))):
            if len(newest_first) >= limit:
                break
            e = parse_line(_decode(raw), ref)
            if isinstance(e, Delivered):
                newest_first.append(e)
        if len(newest_first) >= limit:
            break
    found = newest_first[::-1]
    if not files:
        return found, f"no maillog at {path}"
    return found, _note(scan.read, scan.exhausted, files, f"{len(found)} deliveries")
