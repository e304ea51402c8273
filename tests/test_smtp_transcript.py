"""Transcript lines from what an SMTP client sends (sans-IO): commands shown, a message's lines as
typed (its first and last ones, the others counted), then what followed it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from maillab.smtp.datareader import DataReader
from maillab.smtp.transcript import DISPLAY_LIMIT, HEAD_LINES, RETAIN, TAIL_LINES, ClientLines


def session(before: bytes, body_chunks: list[bytes], lf_end: bool = False) -> list[tuple[str, str]]:
    """Feed commands, a 354, then chunks (body and whatever follows) to a ClientLines and a
    DataReader side by side, as the server does; the transcript lines that come out."""
    lines, reader = ClientLines(), DataReader(10_000_000, lf_end=lf_end)
    out = lines.feed(before)
    lines.body_started(lf_end=lf_end)
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


def test_commands_then_the_message_as_typed_then_what_followed_it():
    out = session(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
                  [b"Subject: hi\r\n\r\nline one\r\n", b"..stuffed\r\n.\r\nQUIT\r\n"])
    assert out == [("client", "EHLO x"), ("client", "MAIL FROM:<a@b>"), ("client", "RCPT TO:<c@d>"),
                   ("client", "DATA"), ("client", "Subject: hi"), ("client", ""), ("client", "line one"),
                   ("client", "..stuffed"), ("note", "(message body: 4 lines, 36 bytes)"), ("client", "."),
                   ("client", "QUIT")]


def test_bare_lf_and_the_end_split_across_chunks():
    out = session(b"DATA\n", [b"a\nb\n", b".", b"\nRSET\nNO", b"OP\n"], lf_end=True)
    assert out[1:] == [("client", "a"), ("client", "b"), ("note", "(message body: 2 lines, 4 bytes)"), ("client", "."),
                       ("client", "RSET"), ("client", "NOOP")]


def test_what_follows_a_huge_pipelined_tail_is_cut_with_a_note():
    junk = b"NOOP " + b"x" * 100 + b"\r\n"
    few = session(b"DATA\r\n", [b"body\r\n.\r\n" + junk * 10])
    assert few[1:4] == [("client", "body"), ("note", "(message body: 1 lines, 6 bytes)"), ("client", ".")]
    assert len(few) == 4 + 10                                # a few pipelined commands: all shown
    for chunks in ([b"body\r\n.\r\n" + junk * (4 * RETAIN // len(junk))],          # one big chunk
                   [b"body\r\n.\r\n"] + [junk * 100] * (3 * RETAIN // (100 * len(junk)))):
        out = session(b"DATA\r\n", chunks)
        cut = [t for k, t in out if k == "note" and "not shown" in t]
        shown = [t for k, t in out[4:] if k == "client"]
        assert len(cut) == 1 and 0 < len(shown) <= 2 * RETAIN // len(junk)
        assert all(t == "NOOP " + "x" * 100 for t in shown)     # whole lines, from a line's start
        hidden = int(cut[0].strip("(").split()[0])
        assert hidden + len(shown) * len(junk) == sum(map(len, chunks)) - len(b"body\r\n.\r\n")


def held(lines: ClientLines) -> int:
    """What a ClientLines holds, in octets or characters: kept chunks, the line in progress, the tail."""
    assert lines._recent_len == sum(map(len, lines._recent))
    return lines._recent_len + len(lines._partial) + sum(len(t) for t, _ in lines._tail)


BOUND = 2 * RETAIN + 4 * DISPLAY_LIMIT + TAIL_LINES * (DISPLAY_LIMIT + 20)


def test_memory_stays_bounded_while_a_big_body_streams():
    lines = ClientLines()
    lines.feed(b"DATA\r\n")
    lines.body_started()
    for size in (1_000_000, 100, 5_000, 300_000, 7):
        lines.feed(b"y" * size)
        assert lines._recent_len <= 2 * RETAIN and held(lines) <= BOUND
    for size in (1_000_000, 100, 5_000, 300_000, 7):
        lines.feed(b"z" * 3000 + b"\r\n" + b"line\r\n" * (size // 6))
        assert held(lines) <= BOUND and len(lines._tail) <= TAIL_LINES


def test_a_10_mb_message_shows_its_first_and_last_lines_and_counts_the_others():
    body = b"".join(b"Line %07d of the message\r\n" % i for i in range(400_000))      # 10.4 MB
    lines, reader = ClientLines(), DataReader(20_000_000)
    out = lines.feed(b"DATA\r\n")
    lines.body_started()
    stream = body + b".\r\nQUIT\r\n"
    peak = 0
    for at in range(0, len(stream), 65536):
        chunk = stream[at:at + 65536]
        out += lines.feed(chunk)
        reader.feed(chunk)
        peak = max(peak, held(lines))
    out += lines.body_ended(reader.taken, reader.lines, reader.taken - reader.end_line)
    assert peak <= BOUND
    texts = [t for _, t in out]
    first = [f"Line {i:07d} of the message" for i in range(HEAD_LINES)]
    last = [f"Line {i:07d} of the message" for i in range(400_000 - TAIL_LINES, 400_000)]
    hidden = 400_000 - HEAD_LINES - TAIL_LINES
    assert texts == ["DATA", *first, f"… {hidden} lines ({hidden * 29} octets) not shown …", *last,
                     f"(message body: 400000 lines, {len(body)} bytes)", ".", "QUIT"]
    assert [k for k, _ in out].count("note") == 2


def test_the_end_line_split_across_chunks_is_not_a_message_line():
    for chunks in ([b"a\r\n.", b"\r\nQUIT\r\n"], [b"a\r\n", b".", b"\r", b"\nQUIT\r\n"],
                   [b"a\n", b".", b"\n", b"QUIT\n"]):
        out = session(b"DATA\r\n", chunks, lf_end=chunks[0] == b"a\n")
        assert out[1:] == [("client", "a"), ("note", f"(message body: 1 lines, {len(chunks[0]) - (chunks[0][-1:] == b'.')} bytes)"),
                           ("client", "."), ("client", "QUIT")], chunks


def test_long_lines_past_the_head_are_counted_whole():
    long = b"x" * 5000
    message = [b"h%d" % i for i in range(HEAD_LINES)] + [long] * 3 + [b"t%d" % i for i in range(TAIL_LINES)]
    body = b"".join(line + b"\r\n" for line in message)
    for step in (1000, 4096, len(body) + 20):
        stream = body + b".\r\n"
        out = session(b"DATA\r\n", [stream[i:i + step] for i in range(0, len(stream), step)])
        assert ("note", f"… 3 lines ({3 * 5002} octets) not shown …") in out, step
        assert [t for _, t in out[-2 - TAIL_LINES:-2]] == [f"t{i}" for i in range(TAIL_LINES)]


line_text = st.text(st.sampled_from("abc .:\t"), max_size=600).map(str.encode)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(line_text, st.sampled_from([b"\r\n", b"\n"])), max_size=3 * HEAD_LINES),
       st.sampled_from([b".\r\n", b".\n"]), st.lists(st.integers(1, 400), max_size=30))
def test_any_chunking_shows_the_first_and_last_lines_as_typed(message, end, steps):
    message = [(b"." + text if text.startswith(b".") else text, eol) for text, eol in message]   # stuffed
    if message:                 # the end line's ending is the one before it (no smuggled end)
        message[-1] = (message[-1][0], end[1:])
    body = b"".join(text + eol for text, eol in message)
    stream = body + end + b"NOOP\r\n"
    chunks, at = [], 0
    for step in steps:
        chunks.append(stream[at:at + step])
        at += step
    chunks = [c for c in chunks + [stream[at:]] if c]
    out = session(b"DATA\r\n", chunks, lf_end=end == b".\n")
    typed = [text.decode() for text, _ in message]
    shown = [t if len(t) <= DISPLAY_LIMIT else f"{t[:DISPLAY_LIMIT]}… ({len(t)} octets)" for t in typed]
    head, rest = shown[:HEAD_LINES], shown[HEAD_LINES:]
    tail = rest[-TAIL_LINES:] if rest else []
    hidden = message[HEAD_LINES:len(message) - len(tail)]
    want = [*head]
    if hidden:
        want.append(f"… {len(hidden)} lines ({sum(len(t) + len(e) for t, e in hidden)} octets) not shown …")
    want += [*tail, f"(message body: {len(message)} lines, {len(body)} bytes)", ".", "NOOP"]
    assert [t for _, t in out[1:]] == want


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
    assert out == [("client", "DATA"), ("client", "Subject: x"), ("client", "hello"),
                   ("note", "(message body: 2 lines, 19 bytes)"),
                   ("client", "."), ("client", "MAIL FROM:<a@b>"), ("client", "RCPT TO:<c@d>")]
