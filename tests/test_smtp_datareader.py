"""DATA reading, bytes in: the end-of-data line (CRLF, and bare LF only for a client at nc),
unstuffing, limits."""

import re

from hypothesis import given, settings, strategies as st

from maillab.smtp.datareader import DataReader, DataStatus, _end_line


def read_all(chunks, max_size=10_000_000, **options):
    r = DataReader(max_size, **options)
    for c in chunks:
        r.feed(c)
    return r


def test_crlf_message_ends_at_dot_line():
    r = read_all([b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n"])
    assert r.done and r.status is DataStatus.OK
    assert r.message() == b"Subject: hi\r\n\r\nbody\r\n"
    assert r.leftover == b"QUIT\r\n"


def test_bare_lf_as_typed_in_nc_ends_and_is_normalised():
    r = read_all([b"Subject: hi\n", b"\n", b"You are on the naughty list\n", b".\n"], lf_end=True)
    assert r.done
    assert r.message() == b"Subject: hi\r\n\r\nYou are on the naughty list\r\n"


def test_bare_lf_lines_do_not_end_a_crlf_client_s_message():
    r = read_all([b"Subject: hi\r\n\r\none\n.\ntwo\n.\r\nthree\r\n.\nfour\r\n.\r\n"])
    assert r.done and r.message() == b"Subject: hi\r\n\r\none\r\n\r\ntwo\r\n\r\nthree\r\n\r\nfour\r\n"


def test_forbid_bare_lf_stops_at_the_first_one():
    r = read_all([b"ok\r\nbare\nrest\r\n.\r\n"], forbid_bare_lf=True)
    assert r.status is DataStatus.BARE_LF


def test_transparency_dots_are_removed():
    r = read_all([b"..hidden\r\n...\r\n.x\r\n.\r\n"])
    assert r.message() == b".hidden\r\n..\r\nx\r\n"


def test_empty_message():
    r = read_all([b".\r\n"])
    assert r.done and r.message() == b""


def test_dot_inside_a_line_is_not_the_end():
    r = read_all([b"a.\r\n", b" .\r\n", b".\r\n"])
    assert r.message() == b"a.\r\n .\r\n"


def test_not_done_without_final_dot():
    r = read_all([b"line\r\n.", b"x\r\n"])
    assert not r.done
    r.feed(b".\r\n")
    assert r.done and r.message() == b"line\r\nx\r\n"


def test_too_big_keeps_scanning_but_stores_nothing():
    r = read_all([b"x" * 500 + b"\r\n"] * 10 + [b".\r\n"], max_size=2000)
    assert r.done and r.status is DataStatus.TOO_BIG and r.message() == b""


def test_line_of_998_octets_is_fine_999_is_too_long():
    ok = read_all([b"a" * 998 + b"\r\n.\r\n"])
    assert ok.status is DataStatus.OK
    bad = read_all([b"a" * 999 + b"\r\n.\r\n"])
    assert bad.done and bad.status is DataStatus.LINE_TOO_LONG


def test_endless_line_keeps_memory_bounded_and_still_finds_the_end():
    r = DataReader(10_000_000)
    for _ in range(1000):
        r.feed(b"z" * 10_000)
        assert len(r._carry) <= 1002
    r.feed(b"\r\nnext\r\n.\r\n")
    assert r.done and r.status is DataStatus.LINE_TOO_LONG


def test_invalid_utf8_passes_through_as_bytes_a_nul_is_refused():
    r = read_all([b"\xff\xfe\r\n.\r\n"])
    assert r.message() == b"\xff\xfe\r\n"
    r = read_all([b"a\x00b\r\n", b"more\r\n.\r\n"])
    assert r.done and r.status is DataStatus.NUL and r.body.size == 0


BODY = (b"From: a@b\r\n\r\n..stuffed\r\nplain\nbare lf\r\n\r\n.. \r\n"
        + b"y" * 900 + b"\r\n.\r\nRSET\r\n")


@settings(max_examples=300)
@given(st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12))
def test_any_split_gives_the_same_message(cuts):
    points = sorted(set(cuts))
    chunks, last = [], 0
    for p in points + [len(BODY)]:
        chunks.append(BODY[last:p])
        last = p
    r = read_all(chunks)
    assert r.done
    assert r.message() == (b"From: a@b\r\n\r\n.stuffed\r\nplain\r\nbare lf\r\n\r\n. \r\n"
                           + b"y" * 900 + b"\r\n")
    assert r.leftover == b"RSET\r\n"


def _oracle(block: bytes, lf_end: bool, after_crlf: bool) -> tuple[tuple[int, int] | None, bool]:
    """Line by line, slow but plainly right: a lone "." whose ending is CRLF after a CRLF, or
    (lf_end) LF after an LF."""
    at, crlf_before, dots = 0, after_crlf, False
    for line in re.findall(rb"[^\n]*\n", block):
        crlf = line.endswith(b"\r\n")
        if line[:-2 if crlf else -1] == b"." and (crlf_before if crlf else lf_end and not crlf_before):
            return (at, at + len(line)), dots
        dots |= line.startswith(b".")
        at, crlf_before = at + len(line), crlf
    return None, dots


@given(st.lists(st.tuples(st.sampled_from([b".", b"..", b".x", b"x", b"x.", b"", b". ", b"\r."]),
                          st.sampled_from([b"\n", b"\r\n"])), max_size=10),
       st.booleans(), st.booleans())
def test_end_line_finds_what_a_line_by_line_reading_finds(lines, lf_end, after_crlf):
    block = b"".join(line + newline for line, newline in lines)
    assert _end_line(block, lf_end, after_crlf) == _oracle(block, lf_end, after_crlf)


@given(st.lists(st.integers(0, 1100), min_size=1, max_size=4), st.sampled_from([b"\n", b"\r\n"]),
       st.booleans())
def test_a_line_is_too_long_exactly_past_998_octets_before_its_crlf(lengths, newline, stuffed):
    # a stuffed line holds "." + n octets and goes on the wire as ".." + n octets
    body = b"".join((b".." if stuffed else b"") + b"y" * n + newline for n in lengths)
    r = read_all([body + b"\r\n.\r\n"])
    assert r.done
    too_long = any(n + stuffed > 998 for n in lengths)
    assert (r.status is DataStatus.LINE_TOO_LONG) == too_long


def test_a_body_over_the_in_flight_budget_is_refused_and_gives_everything_back():
    from maillab.smtp.budget import MemoryBudget
    budget = MemoryBudget(limit=5000)
    first = DataReader(10_000_000, budget=budget)
    first.feed(b"y" * 998 + b"\r\n")
    second = DataReader(10_000_000, budget=budget)
    for _ in range(10):
        second.feed(b"x" * 500 + b"\r\n")
    second.feed(b".\r\n")
    assert second.done and second.status is DataStatus.NO_STORAGE and second.message() == b""
    assert budget.held == 1000          # only the first reader's line is still held
    first.feed(b".\r\n")
    assert first.status is DataStatus.OK and first.message() == b"y" * 998 + b"\r\n"
    first.release()
    assert budget.held == 0


def test_a_20_mb_message_fed_in_chunks_holds_at_most_the_spill_threshold(tmp_path):
    """Memory held by the reader is bounded by the spill threshold plus one chunk, however
    big the message: measured as the largest block Python allocated while feeding it."""
    import tracemalloc

    from maillab.smtp.bodysink import SPILL_AT

    line = b"twenty megabytes, one line after the other, 0123456789\r\n"
    chunk = line * (64 * 1024 // len(line))
    count = 20 * 1024 * 1024 // len(chunk)
    reader = DataReader(max_size=30 * 1024 * 1024, spill_folder=tmp_path)
    tracemalloc.start()
    try:
        for _ in range(count):
            reader.feed(chunk)
        reader.feed(b".\r\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.done and reader.status is DataStatus.OK and reader.size == count * len(chunk)
    assert peak < SPILL_AT + 4 * len(chunk), peak
    spilled = reader.body.spilled()
    spilled.seek(0)
    assert spilled.read() == chunk * count
    reader.release()
    assert list(tmp_path.iterdir()) == []
