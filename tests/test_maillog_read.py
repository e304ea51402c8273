"""Reading the maillog back (maillab.lab.maillog_read): lines as events, a message's hops found from
the end of the file, bounded; and the journey index built from them."""

from __future__ import annotations

import time
from pathlib import Path

from maillab.base.events import (Bounced, Deferred, Delivered, DnsQuery, Notice, Queued, Removed,
                                 SessionClosed, SessionOpened)
from maillab.lab import maillog_read
from maillab.lab.maillog import format_event
from maillab.lab.maillog_read import find_queue_ids, parse_line, recent_deliveries
from maillab.tui.journey import JourneyIndex

T = float(int(time.time()) - 3600)          # whole seconds: the maillog's resolution
ADDRESSES = {"mail.northpole.org": "127.0.0.3", "smtp1.syr.edu": "127.0.0.1", "mx.gmail.com": "127.0.0.4"}
Q1, Q2 = "WB4L15JBLHJG", "WB4L926CHHZW"


def hop_events(t: float = T, q1: str = Q1, q2: str = Q2) -> list:
    """What the lab publishes for santa -> mafudge relayed by mail.northpole.org (as in a real run)."""
    return [
        DnsQuery(t, "127.0.0.3:55013", "udp", "1.0.0.127.in-addr.arpa", "PTR", "NOERROR", 1),
        SessionOpened(t, "mail.northpole.org/submission/1", "submission", "mail.northpole.org",
                      "127.0.0.1:40000", "smtp1.syr.edu"),
        Queued(t + 1, "mail.northpole.org", q1, "santa@northpole.org", ("mafudge@syr.edu",), 264,
               "smtp1.syr.edu[127.0.0.1]"),
        DnsQuery(t + 1, "127.0.0.3:55013", "udp", "syr.edu", "MX", "NOERROR", 2),
        SessionClosed(t + 1, "mail.northpole.org/submission/1", "mail.northpole.org", "closed"),
        DnsQuery(t + 1, "127.0.0.3:55013", "udp", "smtp1.syr.edu", "A", "NOERROR", 1),
        DnsQuery(t + 1, "127.0.0.4:1234", "udp", "gmail.com", "MX", "NOERROR", 1),       # another host
        DnsQuery(t + 1, "127.0.0.1:54567", "udp", "3.0.0.127.in-addr.arpa", "PTR", "NOERROR", 1),
        SessionOpened(t + 1, "smtp1.syr.edu/smtp/2", "smtp", "smtp1.syr.edu", "127.0.0.3:40001",
                      "mail.northpole.org"),
        Queued(t + 2, "smtp1.syr.edu", q2, "santa@northpole.org", ("mafudge@syr.edu",), 445,
               "mail.northpole.org[127.0.0.3]"),
        Delivered(t + 2, "mail.northpole.org", q1, "mafudge@syr.edu", "smtp1.syr.edu[127.0.0.1]:2525", 0.01,
                  "2.0.0", f"250 2.0.0 Ok: queued as {q2}"),
        Removed(t + 2, "mail.northpole.org", q1),
        Delivered(t + 2, "smtp1.syr.edu", q2, "mafudge@syr.edu", "local", 0.02, "2.0.0", "delivered to maildir"),
        Removed(t + 2, "smtp1.syr.edu", q2),
    ]


def lines(events: list) -> str:
    return "".join(line + "\n" for line in map(format_event, events) if line is not None)


def filler(n: int, t: float = T - 86400) -> str:
    """n maillog lines of other messages: the same hosts, other queue IDs, their DNS look-ups."""
    out = []
    for i in range(n // 4):
        qid = f"ZZ{i:010d}"
        out += [Queued(t, "smtp1.syr.edu", qid, "a@syr.edu", ("b@syr.edu",), 300, "localhost[127.0.0.1]"),
                DnsQuery(t, "127.0.0.1:5000", "udp", "syr.edu", "MX", "NOERROR", 2),
                Delivered(t, "smtp1.syr.edu", qid, "b@syr.edu", "local", 0.01, "2.0.0", "delivered to maildir"),
                Removed(t, "smtp1.syr.edu", qid)]
    return lines(out)


def test_every_logged_event_reads_back_as_itself():
    for e in [x for x in hop_events() if not isinstance(x, (SessionOpened, SessionClosed))] + [
            Deferred(T, "mail.northpole.org", Q1, "bob@luxsci.net", "mx1.luxsci.net[127.0.0.5]:2525", 3.5,
                     "4.4.1", "connect to mx1.luxsci.net: refused"),
            Bounced(T, "smtp1.syr.edu", Q2, "nobody@syr.edu", "local", 0.0, "5.1.1", "unknown user"),
            Queued(T, "smtp1.syr.edu", Q2, "", ("a@syr.edu", "b@syr.edu"), 10),           # null sender, no client
            DnsQuery(T, "127.0.0.1:1", "tcp", "nowhere.lab", "A", "NXDOMAIN", 0),
            Notice(T, "smtp1.syr.edu", "bounce", f"sender non-delivery notification: {Q1}", Q2),
            Notice(T, "maillab", "master", "daemon started -- world default, 8 hosts")]:
        assert parse_line(format_event(e)) == e


def test_other_lines_are_notices_and_junk_is_none():
    connect = format_event(hop_events()[1])
    assert parse_line(connect) == Notice(T, "mail.northpole.org", "submission",
                                         "connect from smtp1.syr.edu[127.0.0.1] (mail.northpole.org/submission/1)")
    # a status line cut short still reads as the line it is, under its queue ID
    cut = format_event(hop_events()[-2])[:-30]
    e = parse_line(cut)
    assert isinstance(e, Notice) and e.queue_id == Q2 and e.text.startswith("to=<mafudge@syr.edu>, relay=local")
    for junk in ["", "garbage", "Nov 23 10:43", "Foo 23 10:43:21 h p[1]: x", "Feb 30 10:43:21 h p[1]: x",
                 "\x00\x01\x02", "Nov 23 10:43:21 smtp1.syr.edu maillab/smtpd: no pid"]:
        assert parse_line(junk) is None, junk


def test_a_stamp_without_a_year_takes_the_year_nearest_the_reference():
    line = "Dec 31 23:59:59 h maillab/qmgr[1]: x"
    jan = time.mktime((2031, 1, 1, 0, 0, 30, 0, 0, -1))
    assert time.localtime(parse_line(line, jan).time).tm_year == 2030
    assert time.localtime(parse_line(line, time.mktime((2031, 10, 1, 0, 0, 0, 0, 0, -1))).time).tm_year == 2031


def test_a_message_s_hops_with_connections_and_dns_from_a_small_maillog(tmp_path):
    log = tmp_path / "maillog"
    log.write_text(filler(40) + "\x00\xff garbage line\n" + "Nov 23 10:4\n"
                   + lines(hop_events()) + filler(40, T + 600)
                   + format_event(hop_events(T + 900, Q1, "XXXXXXXXXXXX")[2])[:50],   # still being written
                   encoding="utf-8", errors="surrogateescape")
    found = find_queue_ids(log, [Q1, Q2], ADDRESSES)
    assert found.found == {Q1, Q2} and not found.exhausted
    got = [(type(e).__name__, getattr(e, "queue_id", ""), getattr(e, "name", "")) for e in found.events]
    assert got == [
        ("DnsQuery", "", "1.0.0.127.in-addr.arpa"),          # looked up just before the connection
        ("Notice", Q1, ""),                                   # the connection, tied to the hop it brought
        ("Queued", Q1, ""), ("DnsQuery", "", "syr.edu"), ("DnsQuery", "", "smtp1.syr.edu"),
        ("DnsQuery", "", "3.0.0.127.in-addr.arpa"), ("Notice", Q2, ""), ("Queued", Q2, ""),
        ("Delivered", Q1, ""), ("Removed", Q1, ""), ("Delivered", Q2, ""), ("Removed", Q2, "")]
    assert "gmail.com" not in str(found.events)                # another host's look-up
    assert [e.time for e in found.events] == sorted(e.time for e in found.events)   # file order kept
    assert found.events[1].text == "connect from smtp1.syr.edu[127.0.0.1] (mail.northpole.org/submission/1)"
    assert found.note.startswith("found 2 of 2 queue IDs; searched the last") and "(1 file)" in found.note

    # the journey index makes the same rows of it as of live events
    index = JourneyIndex.from_events(ADDRESSES, found.events)
    live = JourneyIndex(ADDRESSES)
    live.ingest(hop_events())
    for qid in (Q1, Q2):
        assert [text for _t, text in index.records[qid].events if "connect" not in text] == \
            [text for _t, text in live.records[qid].events]
        assert index.complete(qid) and index.records[qid].host == live.records[qid].host
    first = index.records[Q1]
    assert [q.name for q in index.dns_for("mail.northpole.org", first.first - 1, first.last + 1)] == \
        ["1.0.0.127.in-addr.arpa", "syr.edu", "smtp1.syr.edu"]


def test_unknown_ids_an_empty_file_and_no_file(tmp_path):
    log = tmp_path / "maillog"
    assert find_queue_ids(log, [Q1], ADDRESSES).note == f"no maillog at {log}"
    log.write_bytes(b"")
    assert find_queue_ids(log, [Q1], ADDRESSES).found == set()
    log.write_text(lines(hop_events()))
    found = find_queue_ids(log, ["NOSUCHQUEUE1"], ADDRESSES)
    assert found.found == set() and found.events == [] and found.note.startswith("found 0 of 1 queue IDs")


def test_rotated_files_are_read_newest_first_and_returned_in_order(tmp_path):
    log = tmp_path / "maillog"
    events = hop_events()
    (tmp_path / "maillog.1").write_text(filler(20) + lines(events[:8]))     # rotated mid-way
    log.write_text(lines(events[8:]) + filler(20, T + 600))
    found = find_queue_ids(log, [Q1, Q2], ADDRESSES)
    assert found.found == {Q1, Q2} and "(2 files)" in found.note
    kinds = [(type(e).__name__, getattr(e, "queue_id", "")) for e in found.events]
    assert kinds.index(("Queued", Q1)) < kinds.index(("Queued", Q2)) < kinds.index(("Delivered", Q2))


def test_an_overlong_line_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(maillog_read, "CHUNK", 4096)
    log = tmp_path / "maillog"
    log.write_text(lines(hop_events()[:3]) + "x" * (maillog_read.MAX_LINE * 3) + "\n" + lines(hop_events()[3:]))
    found = find_queue_ids(log, [Q1, Q2], ADDRESSES)
    assert found.found == {Q1, Q2}
    assert sum(isinstance(e, Queued) for e in found.events) == 2


def big_maillog(path: Path, megabytes: int, head: str = "", tail: str = "") -> None:
    block = filler(4000).encode()
    with open(path, "wb") as f:
        f.write(head.encode())
        for _ in range(megabytes * (1 << 20) // len(block)):
            f.write(block)
        f.write(tail.encode())


def test_a_big_maillog_is_searched_from_the_end_within_a_budget(tmp_path):
    log = tmp_path / "maillog"
    big_maillog(log, 24, head=lines(hop_events()))           # the message is at the very start
    assert log.stat().st_size > 20 << 20
    found = find_queue_ids(log, [Q1, Q2], ADDRESSES, budget=8 << 20)
    assert found.found == set() and found.exhausted
    assert found.read <= 8 << 20
    assert found.note == ("found 0 of 2 queue IDs; searched the last 8.0 MB of the maillog (1 file), "
                          "the limit: older lines not read")
    whole = find_queue_ids(log, [Q1, Q2], ADDRESSES, budget=64 << 20)  # a budget that reaches it
    assert whole.found == {Q1, Q2} and not whole.exhausted


def test_a_recent_message_in_a_big_maillog_is_found_reading_little(tmp_path):
    log = tmp_path / "maillog"
    big_maillog(log, 24, tail=lines(hop_events(T + 86400 * 2)) + filler(400, T + 86400 * 3))
    found = find_queue_ids(log, [Q1, Q2], ADDRESSES)
    assert found.found == {Q1, Q2} and not found.exhausted
    # a chunk or two, and the hops' neighbourhood: its speed, whatever the machine's load
    assert found.read < 3 * maillog_read.CHUNK


def test_recent_deliveries_are_the_last_local_ones_oldest_first(tmp_path):
    log = tmp_path / "maillog"
    log.write_text(filler(40) + lines(hop_events()))
    past, note = recent_deliveries(log, 3)
    assert [d.queue_id for d in past] == ["ZZ0000000008", "ZZ0000000009", Q2]
    assert all(isinstance(d, Delivered) and d.relay == "local" for d in past)
    assert note.startswith("3 deliveries; searched the last")


def test_past_deliveries_go_before_the_live_ones_once(tmp_path):
    index = JourneyIndex(ADDRESSES, max_deliveries=3)
    index.ingest(hop_events())
    live = index.deliveries[-1]
    log = tmp_path / "maillog"
    log.write_text(filler(40) + lines(hop_events()))
    past, _note = recent_deliveries(log, 10)
    assert index.add_past(past) == 2                          # room for two; the live one is not repeated
    assert [d.queue_id for d in index.deliveries] == ["ZZ0000000008", "ZZ0000000009", live.queue_id]
    assert not index.complete("ZZ0000000008") and index.complete(Q2)


def test_a_line_being_written_is_left_out(tmp_path):
    log = tmp_path / "maillog"
    text = lines(hop_events())
    log.write_text(text[:-20])                                 # the last line has no newline yet
    found = find_queue_ids(log, [Q2], ADDRESSES)
    assert not any(isinstance(e, Removed) and e.queue_id == Q2 for e in found.events)
    assert any(isinstance(e, Delivered) and e.queue_id == Q2 for e in found.events)


def test_the_writer_keeps_the_last_lines_it_wrote_for_the_log_panel(tmp_path, monkeypatch):
    from maillab.lab import maillog
    from maillab.base.events import EventBus

    monkeypatch.setattr(maillog, "RECENT", 3)
    log = maillog.MailLog(EventBus(), tmp_path / "maillog")
    try:
        log.write(hop_events())
        lines = (tmp_path / "maillog").read_text().splitlines()
        assert len(lines) > 3 and log.written == len(lines)
        assert log.tail() == lines[-3:]                   # bounded: the last RECENT
        assert log.tail(len(lines) - 1) == lines[-1:]     # only what came after
        assert log.tail(len(lines)) == []
        log.write([Notice(T, "smtp1.syr.edu", "test", "one more")])
        assert log.tail(len(lines)) == [(tmp_path / "maillog").read_text().splitlines()[-1]]
        assert log.tail(len(lines))[0].endswith("maillab/test[%d]: one more" % maillog._PID)
    finally:
        log._file.close()
