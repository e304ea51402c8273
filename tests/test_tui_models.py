"""The TUI's models, fed events by hand: sessions, journeys, Received hops, monitoring, formats."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from maillab.base.events import (Bounced, Deferred, Delivered, DnsQuery, MxTried, Queued, SessionClosed,
                                 SessionLine, SessionOpened)
from maillab.smtp.received import local_received_header, received_header
from maillab.tui.fmt import countdown, duration, size
from maillab.tui.journey import JourneyIndex, hops, parse_received
from maillab.tui.metrics import Monitor, disk_usage, spark
from maillab.tui.sessions import SessionBook


def test_sessions_are_recorded_explained_and_bounded():
    book = SessionBook(max_sessions=3, max_lines=4)
    ch = book.ingest([SessionOpened(1.0, "h/smtp/1", "smtp", "h", "127.0.0.3:4000", "mail.northpole.org"),
                      SessionLine(1.1, "h/smtp/1", "h", "server", "220 h ESMTP maillab"),
                      SessionLine(1.2, "h/smtp/1", "h", "client", "HELO northpole.org")])
    assert ch.opened == ["h/smtp/1"] and len(ch.lines["h/smtp/1"]) == 2
    s = book.get("h/smtp/1")
    assert s.client == "mail.northpole.org [127.0.0.3]" and s.open
    assert not s.notes                                   # explained only when shown
    s.explain()
    assert s.notes[0][0].text.startswith("220: service ready") and s.notes[1][0].text.startswith("HELO:")
    for i in range(5):
        book.ingest([SessionLine(2.0 + i, "h/smtp/1", "h", "client", f"NOOP {i}")])
    assert len(s.lines) == 4 and s.dropped == 3
    s.explain()                                          # notes stay in step with the kept lines
    assert len(s.notes) == 4 and all(n[0].text.startswith("NOOP:") for n in s.notes)
    ch = book.ingest([SessionClosed(9.0, "h/smtp/1", "h", "closed")])
    assert ch.updated == {"h/smtp/1"} and s.state == "closed"
    # over max_sessions: closed sessions are forgotten first
    ch = book.ingest([SessionOpened(10.0 + i, f"h/smtp/{i}", "smtp", "h", "127.0.0.1:1") for i in range(2, 5)])
    assert ch.forgotten == ["h/smtp/1"] and list(book.sessions) == ["h/smtp/2", "h/smtp/3", "h/smtp/4"]
    assert book.newest().id == "h/smtp/4" and book.total_opened == 4


def test_the_newest_session_is_the_one_that_began_last_not_the_one_heard_of_last():
    """A server says a session opened once it has looked up the client's name: a probe that
    connected first may be announced after the session typed right behind it (the tmux test's
    port probes and the course session, 1 run in 6 under load)."""
    book = SessionBook()
    book.ingest([SessionOpened(5.0, "h/smtp/3", "smtp", "h", "127.0.0.1:3"),         # the typed session
                 SessionOpened(4.9, "h/smtp/1", "smtp", "h", "127.0.0.1:1")])        # a probe, announced late
    assert book.newest().id == "h/smtp/3"
    book.ingest([SessionOpened(5.0, "h/pop3/1", "pop3", "h", "127.0.0.1:4")])         # at once: the later heard of
    assert book.newest().id == "h/pop3/1"


def test_a_line_of_an_unseen_session_opens_it():
    book = SessionBook()
    ch = book.ingest([SessionLine(1.0, "mx.gmail.com/pop3/7", "mx.gmail.com", "client", "USER tim")])
    assert ch.opened == ["mx.gmail.com/pop3/7"] and book.get("mx.gmail.com/pop3/7").protocol == "pop3"


def test_received_headers_become_hops_oldest_first_with_delays():
    first = received_header(helo="workshop.northpole.org", client_name="localhost", client_ip="127.0.0.1",
                            by="mail.northpole.org", protocol="ESMTPA", queue_id="AAAA1", recipients=["a@b"],
                            when=1_700_000_000)
    second = received_header(helo="mail.northpole.org", client_name="mail.northpole.org",
                             client_ip="127.0.0.3", by="smtp1.syr.edu", protocol="ESMTPS",
                             queue_id="BBBB2", recipients=["x@y", "z@y"], when=1_700_000_007)
    header = b"Return-Path: <santa@northpole.org>\r\n" + second + first + b"Subject: hi\r\n\r\n"
    trace = hops(header)
    assert [h.by for h in trace] == ["mail.northpole.org", "smtp1.syr.edu"]
    a, b = trace
    assert (a.helo, a.client_name, a.client_ip, a.queue_id, a.recipient) == \
        ("workshop.northpole.org", "localhost", "127.0.0.1", "AAAA1", "a@b")
    assert a.authenticated and not a.tls and a.delay is None
    assert b.tls and not b.authenticated and b.recipient == "" and b.delay == 7
    local = parse_received(local_received_header(by="smtp1.syr.edu", queue_id="CCCC3", when=1_700_000_000)
                           .decode().split(":", 1)[1])
    assert (local.by, local.queue_id, local.client_ip) == ("smtp1.syr.edu", "CCCC3", "")
    postfix = parse_received("from mail.example.org (mail.example.org [IPv6:2001:db8::1]) by mx.example.com "
                             "(Postfix) with ESMTPSA id 4F3A; " + formatdate(1_700_000_000))
    assert postfix.client_ip == "2001:db8::1" and postfix.tls and postfix.authenticated
    with_cipher = parse_received("from x (y [127.0.0.3])\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 "
                                 "(256/256 bits))\r\n\tby smtp1.syr.edu (maillab) with ESMTPS id Q1; "
                                 + formatdate(1_700_000_000))          # the TLS comment's "with" is no protocol
    assert (with_cipher.protocol, with_cipher.by, with_cipher.queue_id) == ("ESMTPS", "smtp1.syr.edu", "Q1")
    assert hops(b"Subject: no trace\r\n\r\n") == []


def test_the_journey_index_links_queue_ids_sessions_and_dns():
    index = JourneyIndex({"mail.northpole.org": "127.0.0.3"}, max_messages=2)
    delivered = index.ingest([
        Queued(10.0, "mail.northpole.org", "Q1", "santa@northpole.org", ("mafudge@syr.edu",), 300, "localhost"),
        DnsQuery(10.1, "127.0.0.3:5353", "udp", "syr.edu", "MX", "NOERROR", 2),
        DnsQuery(10.1, "127.0.0.9:5353", "udp", "gmail.com", "MX", "NOERROR", 1),
        SessionLine(10.2, "mail.northpole.org/smtp-out/1", "mail.northpole.org", "server",
                    "250 2.0.0 Ok: queued as Q9"),          # what a transcript says links nothing
        Queued(10.2, "smtp1.syr.edu", "Q2", "santa@northpole.org", ("mafudge@syr.edu",), 350,
               "mail.northpole.org[127.0.0.3]", "smtp1.syr.edu/smtp/4"),
        MxTried(10.25, "mail.northpole.org", "Q1", "smtp1.syr.edu", "127.0.0.1:2525", "delivered",
                "250 2.0.0 Ok: queued as Q2", "mail.northpole.org/smtp-out/1", "Q2"),
        Delivered(10.3, "mail.northpole.org", "Q1", "mafudge@syr.edu", "smtp1.syr.edu[127.0.0.1]:2525", 0.3,
                  "2.0.0", "250 2.0.0 Ok: queued as Q2"),
        Delivered(10.4, "smtp1.syr.edu", "Q2", "mafudge@syr.edu", "local", 0.1, "2.0.0", "delivered"),
    ])
    assert delivered == 1 and [d.queue_id for d in index.deliveries] == ["Q2"]
    q1 = index.records["Q1"]
    assert q1.host == "mail.northpole.org" and q1.events[0][1].startswith("queued at mail.northpole.org")
    assert index.records["Q2"].sessions == ["smtp1.syr.edu/smtp/4", "mail.northpole.org/smtp-out/1"]
    assert "Q9" not in index.records
    assert [q.name for q in index.dns_for("mail.northpole.org", q1.first, q1.last)] == ["syr.edu"]
    assert index.dns_for("nowhere", 0, 100) == []
    index.ingest([Deferred(11.0, "h", "Q3", "r", "none", 1, "4.4.1", "refused")])
    assert list(index.records) == ["Q2", "Q3"]            # bounded: the oldest is forgotten


def test_the_monitor_counts_per_second_and_keeps_a_short_history():
    m = Monitor()
    m.ingest([Queued(1, "h", "Q", "s", ("r",), 1), Queued(1, "h", "Q2", "s", ("r",), 1),
              Delivered(1, "h", "Q", "r", "local", 0, "2.0.0", ""), Deferred(1, "h", "Q", "r", "x", 0, "4", ""),
              Bounced(1, "h", "Q", "r", "x", 0, "5", ""),
              SessionOpened(1, "h/smtp/1", "smtp", "h", "1:1"), SessionOpened(1, "h/smtp-out/1", "smtp-out", "h", "1:1")])
    m.tick(queue_depth=7, disk_bytes=3_000_000, held=5)
    latest = {k: s.latest for k, s in m.series.items()}
    assert latest == {"in": 2, "out": 1, "queue": 7, "deferred": 1, "failed": 1, "connections": 1, "disk": 3.0,
                      "held": 5}
    m.tick(queue_depth=0, disk_bytes=None, held=8)    # no new disk sample: the last one holds
    assert m.series["in"].latest == 0 and m.series["disk"].latest == 3.0 and m.series["in"].peak == 2
    assert m.series["held"].latest == 3               # held this second: the gate's count went 5 -> 8
    for _ in range(500):
        m.tick(0, None)
    assert len(m.series["in"].points) == 120


def test_text_sparklines():
    assert spark([0, 1, 2, 4, 8], 10) == "▁▂▃▅█"
    assert spark([5, 0, 5], 2) == "▁█" and spark([0, 0], 5) == "▁▁" and spark([], 5) == "" and spark([1], 0) == ""


def test_disk_usage_counts_files_under_the_roots(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"x" * 1000)
    (tmp_path / "a" / "g").write_bytes(b"y" * 24)
    assert disk_usage(tmp_path / "a", tmp_path / "missing") == 1024


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.6, "1m00s"), (90, "1m30s"), (3700, "1h01m"),
                                           (2 * 86400 + 3600, "2d01h")])
def test_durations(seconds, text):
    assert duration(seconds) == text


def test_countdowns_and_sizes():
    assert countdown(None, 100) == "-" and countdown(90, 100) == "due now" and countdown(400, 100) == "in 5m00s"
    assert size(512) == "512 B" and size(2048) == "2.0 KB" and size(5 * 1024 ** 3) == "5.0 GB"
