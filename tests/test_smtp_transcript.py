"""Transcript lines from what an SMTP client sends (sans-IO): commands shown, a body summarised."""

from __future__ import annotations

from maillab.smtp.datareader import DataReader
from maillab.smtp.transcript import RETAIN, ClientLines


def session(before: bytes, body_chunks: list[bytes]) -> list[tuple[str, str]]:
    """Feed commands, a 354, then chunks (body and whatever follows) to a ClientLines and a
    DataReader side by side, as the server does; the transcript lines that come out."""
    lines, reader = ClientLines(), DataReader(10_000_000)
    out = lines.feed(before)
    lines.body_started()
    rest = b""
    for chunk in body_chunks:
        out += lines.feed(chunk)
        if not reader.done:
            reader.feed(chunk)
        else:
            rest += chunk
    assert reader.done
    out += lines.body_ended(reader.taken, reader.lines, reader.taken - reader.end_line)
    return out


def test_commands_then_a_body_summarised_then_what_followed_it():
    out = session(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
                  [b"Subject: hi\r\n\r\nline one\r\n", b"..stuffed\r\n.\r\nQUIT\r\n"])
    assert out == [("client", "EHLO x"), ("client", "MAIL FROM:<a@b>"), ("client", "RCPT TO:<c@d>"),
                   ("client", "DATA"), ("note", "(message body: 4 lines, 36 bytes)"), ("client", "."),
                   ("client", "QUIT")]


def test_bare_lf_and_the_end_split_across_chunks():
    out = session(b"DATA\n", [b"a\nb\n", b".", b"\nRSET\nNO", b"OP\n"])
    assert out[1:] == [("note", "(message body: 2 lines, 4 bytes)"), ("client", "."),
                       ("client", "RSET"), ("client", "NOOP")]


def test_what_follows_a_huge_pipelined_tail_is_cut_with_a_note():
    junk = b"NOOP " + b"x" * 100 + b"\r\n"
    few = session(b"DATA\r\n", [b"body\r\n.\r\n" + junk * 10])
    assert few[1:3] == [("note", "(message body: 1 lines, 6 bytes)"), ("client", ".")]
    assert len(few) == 3 + 10                                # a few pipelined commands: all shown
    for chunks in ([b"body\r\n.\r\n" + junk * (4 * RETAIN // len(junk))],          # one big chunk
                   [b"body\r\n.\r\n"] + [junk * 100] * (3 * RETAIN // (100 * len(junk)))):
        out = session(b"DATA\r\n", chunks)
        cut = [t for k, t in out if k == "note" and "not shown" in t]
        shown = [t for k, t in out[3:] if k == "client"]
        assert len(cut) == 1 and 0 < len(shown) <= 2 * RETAIN // len(junk)
        assert all(t == "NOOP " + "x" * 100 for t in shown)     # whole lines, from a line's start
        hidden = int(cut[0].strip("(").split()[0])
        assert hidden + len(shown) * len(junk) == sum(map(len, chunks)) - len(b"body\r\n.\r\n")


def test_memory_stays_bounded_while_a_big_body_streams():
    lines = ClientLines()
    lines.feed(b"DATA\r\n")
    lines.body_started()
    for size in (1_000_000, 100, 5_000, 300_000, 7):
        lines.feed(b"y" * size)
        assert lines._recent_len == sum(map(len, lines._recent)) <= 2 * RETAIN


def test_a_body_sent_before_the_354_is_not_shown_twice_nor_mangled():
    """A client that does not wait for the 354: its body was shown as lines already."""
    lines, reader = ClientLines(), DataReader(10_000)
    early = b"Subject: x\r\n"
    out = lines.feed(b"DATA\r\n" + early)
    lines.body_started(buffered=len(early))              # aiosmtpd has not read those yet
    chunk = b"hello\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
    out += lines.feed(chunk)
    reader.feed(early + chunk)
    out += lines.body_ended(reader.taken, reader.lines, reader.taken - reader.end_line)
    assert out == [("client", "DATA"), ("client", "Subject: x"), ("note", "(message body: 2 lines, 19 bytes)"),
                   ("client", "."), ("client", "MAIL FROM:<a@b>"), ("client", "RCPT TO:<c@d>")]
