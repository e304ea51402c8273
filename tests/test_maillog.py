"""The maillog writer (maillab.lab.maillog.MailLog): rotation by size read back across the files,
DNS query floods and exact repeats held back, and a disk that fails (ENOSPC) survived."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import stat
import time
from pathlib import Path

import dns.message
import dns.query
import pytest

from conftest import async_wait_for, free_offset
from maillab.base.clock import Clock
from maillab.base.events import Delivered, EventBus, Notice
from maillab.dns.authority import Authority
from maillab.dns.server import DnsServer
from maillab.lab.maillog import LogLimits, MailLog
from maillab.lab.maillog_read import find_queue_ids, log_files, recent_deliveries
from maillab.lab.state import StateDir
from maillab.lab.supervisor import Lab, LabError
from maillab.lab.world import load_world
from maillab.net.ports import Ports
from netutil import free_port

T = float(int(time.time()) - 60)


def delivered(n: int) -> Delivered:
    return Delivered(T, "smtp1.syr.edu", f"QA{n:010d}", f"user{n}@syr.edu", "local", 0.01, "2.0.0",
                     "delivered to maildir")


def file_lines(path: Path) -> list[str]:
    """The lines of the maillog and its rotations, oldest first."""
    return [line for p in reversed(log_files(path)) for line in p.read_text().splitlines()]


def test_rotation_by_size_keeps_n_files_and_the_reader_reads_across_them(tmp_path):
    path = tmp_path / "maillog"
    log = MailLog(EventBus(), path, limits=LogLimits(max_bytes=4000, keep=3))
    for batch in range(30):
        log.write([delivered(batch * 10 + i) for i in range(10)])
    asyncio.run(log.stop())
    assert [p.name for p in log_files(path)] == ["maillog", "maillog.1", "maillog.2", "maillog.3"]
    for p in log_files(path):
        assert 0 < p.stat().st_size <= 4000
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    kept = file_lines(path)
    numbers = [int(re.search(r"QA(\d{10})", line).group(1)) for line in kept]
    assert numbers == list(range(300 - len(numbers), 300))       # the newest lines, none lost or doubled
    assert 300 > len(numbers) > 3 * 4000 // 200                    # older files were rotated away

    found, note = recent_deliveries(path, 40)
    assert [d.queue_id for d in found] == [f"QA{n:010d}" for n in range(260, 300)]
    newest = path.read_text().count("\n")
    assert newest < 40 and "4 files" in note                       # some came from maillog.1 and beyond
    oldest = numbers[0]
    hops = find_queue_ids(path, [f"QA{oldest:010d}"], {})
    assert hops.found == {f"QA{oldest:010d}"}                      # a line that is in maillog.3


def test_an_exact_repeat_becomes_last_message_repeated(tmp_path):
    path = tmp_path / "maillog"
    log = MailLog(EventBus(), path)
    same = [Notice(T + i, "smtp1.syr.edu", "smtpd", "warning: hostname localhost does not resolve")
            for i in range(100)]
    log.write(same[:60])
    log.write(same[60:] + [Notice(T + 100, "smtp1.syr.edu", "smtpd", "something else")])
    log.write(same[:5])
    asyncio.run(log.stop())
    texts = [line.split("]: ", 1)[1] for line in path.read_text().splitlines()]
    assert texts == ["warning: hostname localhost does not resolve", "last message repeated 99 times",
                     "something else", "warning: hostname localhost does not resolve",
                     "last message repeated 4 times"]


def _flood(port: int, n: int, source: str) -> None:
    """`n` A queries over real UDP (dnspython), each from a new source port, as a scanner sends them."""
    for i in range(n):
        q = dns.message.make_query(f"h{i}.syr.edu", "A")
        dns.query.udp(q, "127.0.0.1", port=port, timeout=5, source=source)


async def test_a_dns_query_flood_from_one_client_grows_the_log_only_by_its_bucket(tmp_path):
    bus = EventBus()
    server = DnsServer(Authority(load_world().zones), bus, Clock(), "127.0.0.1", free_port())
    await server.start()
    path = tmp_path / "maillog"
    limits = LogLimits(dns_rate=5.0, dns_burst=50, summary_every=0.5)
    log = MailLog(bus, path, limits=limits)
    log.start()
    try:
        began = time.monotonic()
        await asyncio.to_thread(_flood, server.port, 5000, "127.0.0.1")
        elapsed = time.monotonic() - began
        await asyncio.to_thread(_flood, server.port, 10, "127.0.0.2")        # another client meanwhile
        await async_wait_for(lambda: sum("query from 127.0.0.2:" in line for line in log.tail()) == 10, 20,
                             what="the other client's 10 queries in the maillog")
    finally:
        await log.stop()
        await server.stop()
    lines = path.read_text().splitlines()
    flooder = [line for line in lines if "query from 127.0.0.1:" in line]
    summaries = [int(m.group(1)) for line in lines
                 if (m := re.search(r": (\d+) similar lines from 127\.0\.0\.1 suppressed$", line))]
    assert len(flooder) <= limits.dns_burst + limits.dns_rate * (elapsed + 1)
    assert summaries, "no suppression summary"
    assert len(summaries) <= elapsed / limits.summary_every + 2     # at most one per interval (and a last)
    assert len(flooder) + sum(summaries) == 5000                   # every query written or counted
    assert sum("query from 127.0.0.2:" in line for line in lines) == 10   # its own bucket


def _make_full(path: Path) -> None:
    """The maillog is /dev/full: every write fails with ENOSPC."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.symlink_to("/dev/full")


def _make_writable(path: Path) -> None:
    fresh = path.with_name("maillog.new")
    fresh.touch(mode=0o600)
    os.replace(fresh, path)


async def test_a_full_disk_costs_counted_lines_not_the_writer_and_the_lab_stops_cleanly(tmp_path, capfd):
    state = StateDir(tmp_path / "state")
    _make_full(state.maillog)
    for _ in range(5):
        lab = Lab(world=load_world(), state=state, ports=Ports(free_offset()), clock=Clock())
        try:
            await lab.start()
            break
        except LabError:
            continue
    else:
        pytest.fail("could not start a lab")
    try:
        for i in range(20):
            lab.bus.publish(Notice(time.time(), "maillab", "test", f"lost line {i}"))
        await async_wait_for(lambda: lab._log is not None and lab._log.dropped >= 21, 20,
                             what="21 lines counted as dropped")
        assert "cannot write" in capfd.readouterr().err
        _make_writable(state.maillog)
        await async_wait_for(lambda: lab._log.dropped == 0, 20, what="the writer to recover (its retry, 1 s later)")
        lab.bus.publish(Notice(time.time(), "maillab", "test", "after the disk was freed"))
        await async_wait_for(lambda: "after the disk was freed" in state.maillog.read_text(), 20,
                             what="the line after recovery")
    finally:
        await lab.stop()                                           # raises if the writer died
    text = state.maillog.read_text()
    assert re.search(r"maillab/log\[\d+\]: \d+ lines not written \(No space left on device\)", text)
    assert "lost line" not in text and "daemon stopped" in text
    assert stat.S_IMODE(state.maillog.stat().st_mode) == 0o600
    err = capfd.readouterr().err
    assert "again" in err and "cannot write" not in err               # one notice each way


def test_serve_on_a_full_disk_stops_on_sigterm_without_a_traceback(tmp_path, served):
    _make_full(tmp_path / "state" / "log" / "maillog")
    lab = served(tmp_path / "state")
    with socket.create_connection(("127.0.0.1", lab.ports.smtp), timeout=10) as s:   # a line to lose
        s.recv(1024)
        s.sendall(b"QUIT\r\n")
        s.recv(1024)
    assert lab.kill(signal.SIGTERM) == 0
    out = lab.output()
    assert "Traceback" not in out and "cannot write" in out


async def test_stop_right_after_an_event_ends_the_writer(tmp_path):
    """An event published just before stop (Lab.stop's own 'daemon stopped' notice) wakes the
    writer as it is cancelled: under Python 3.11's asyncio.wait_for the cancellation was
    swallowed and stop waited for ever (a lab fixture hung in teardown)."""
    bus = EventBus()
    for n in range(50):
        log = MailLog(bus, tmp_path / f"maillog.{n}")
        log.start()
        await asyncio.sleep(0.06)                 # the writer waits for its next batch
        bus.publish(delivered(n))
        await asyncio.wait_for(log.stop(), 5)
        assert any(" status=sent" in line for line in file_lines(tmp_path / f"maillog.{n}"))
