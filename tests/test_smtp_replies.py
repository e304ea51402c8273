"""ReplyParser and Reply: bytes in, replies out (RFC 5321 §4.2)."""

from __future__ import annotations

import pytest

from maillab.smtp.replies import MAX_LINE, MAX_LINES, ProtocolError, Reply, ReplyParser

try:
    import hypothesis
    from hypothesis import given, strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    hypothesis = None

EHLO = (b"250-smtp1.syr.edu\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        b"250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")


def parse_all(*chunks: bytes) -> list[Reply]:
    parser = ReplyParser()
    replies: list[Reply] = []
    for chunk in chunks:
        replies.extend(parser.feed(chunk))
    assert not parser.pending
    return replies


def test_single_line() -> None:
    assert parse_all(b"220 smtp1.syr.edu ESMTP maillab\r\n") == [
        Reply(220, ("smtp1.syr.edu ESMTP maillab",))]


def test_multi_line() -> None:
    [reply] = parse_all(EHLO)
    assert reply.code == 250
    assert reply.lines == ("smtp1.syr.edu", "PIPELINING", "SIZE 10240000",
                           "8BITMIME", "ENHANCEDSTATUSCODES")
    assert reply.text == "smtp1.syr.edu PIPELINING SIZE 10240000 8BITMIME ENHANCEDSTATUSCODES"


def test_incomplete_reply_waits() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250-first\r\n250-sec") == []
    assert parser.pending
    assert parser.feed(b"ond\r\n250 third\r") == []
    assert parser.feed(b"\n") == [Reply(250, ("first", "second", "third"))]
    assert not parser.pending


def test_several_replies_in_one_chunk() -> None:
    data = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    assert [r.code for r in parse_all(data)] == [250, 250, 354]


def test_bare_lf_and_mixed_endings() -> None:
    assert parse_all(b"250-a\n250-b\r\n250 c\n") == [Reply(250, ("a", "b", "c"))]


def test_code_only_line() -> None:
    assert parse_all(b"250\r\n") == [Reply(250, ("",))]
    assert str(Reply(250, ("",))) == "250"


def test_every_split_point() -> None:
    data = EHLO + b"550 5.1.1 <bob@luxsci.net>: Recipient address rejected\r\n"
    expected = parse_all(data)
    for cut in range(len(data) + 1):
        assert parse_all(data[:cut], data[cut:]) == expected
    assert parse_all(*(data[i:i + 1] for i in range(len(data)))) == expected


def test_reply_properties() -> None:
    reply = Reply(550, ("5.1.1 <bob@x>: Recipient address rejected",))
    assert reply.enhanced == "5.1.1"
    assert reply.is_permanent and not reply.is_transient and not reply.is_positive
    assert str(reply) == "550 5.1.1 <bob@x>: Recipient address rejected"
    assert Reply(451, ("4.3.0 try later",)).is_transient
    assert Reply(354, ("go ahead",)).is_positive
    assert Reply(250, ("2.0.0 Ok: queued as X",)).is_positive


def test_enhanced_code_only_when_present_and_matching() -> None:
    assert Reply(250, ("Ok",)).enhanced == ""
    assert Reply(250, ("2.0.0",)).enhanced == "2.0.0"
    assert Reply(550, ("2.0.0 odd",)).enhanced == ""      # class must match the code
    assert Reply(550, ("5.1.10x nope",)).enhanced == ""
    assert Reply(250, ("smtp.example", "5.1.1")).enhanced == ""  # first line only


def test_wire_round_trip() -> None:
    reply = Reply(250, ("smtp1.syr.edu", "SIZE 100", "8BITMIME"))
    assert reply.wire_lines() == ("250-smtp1.syr.edu", "250-SIZE 100", "250 8BITMIME")
    assert parse_all(reply.to_bytes()) == [reply]


def test_invalid_utf8_is_replaced() -> None:
    [reply] = parse_all(b"550 caf\xe9 \xff\r\n")
    assert reply.text == "caf\ufffd \ufffd"


def test_line_of_max_length_is_fine() -> None:
    line = b"250 " + b"x" * (MAX_LINE - 4)
    assert parse_all(line + b"\r\n")[0].code == 250
    assert parse_all(line[:-1], line[-1:] + b"\r", b"\n")[0].code == 250


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b""])
def test_overlong_line(ending: bytes) -> None:
    parser = ReplyParser()
    with pytest.raises(ProtocolError, match="longer than"):
        parser.feed(b"250 " + b"x" * (MAX_LINE - 3) + ending)


def test_overlong_line_in_small_chunks_is_caught_early() -> None:
    parser = ReplyParser()
    with pytest.raises(ProtocolError):
        for _ in range(MAX_LINE):
            parser.feed(b"250-xxxxxxxx")


def test_too_many_lines() -> None:
    parser = ReplyParser()
    parser.feed(b"250-x\r\n" * MAX_LINES)
    with pytest.raises(ProtocolError, match="lines"):
        parser.feed(b"250-x\r\n")
    ok = ReplyParser().feed(b"250-x\r\n" * (MAX_LINES - 1) + b"250 x\r\n")
    assert len(ok[0].lines) == MAX_LINES


@pytest.mark.parametrize("garbage", [
    b"hello there\r\n",
    b"25 short\r\n",
    b"2500 long code\r\n",
    b"250xno separator\r\n",
    b"650 bad class\r\n",
    b"\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"250-first\r\n251 other code\r\n",
])
def test_garbage(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        ReplyParser().feed(garbage)


def test_parser_stays_broken() -> None:
    parser = ReplyParser()
    with pytest.raises(ProtocolError):
        parser.feed(b"nonsense\r\n")
    with pytest.raises(ProtocolError):
        parser.feed(b"250 fine now\r\n")


if hypothesis is not None:
    texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FFF,
                                  blacklist_categories=("Cs",)), max_size=40)
    replies = st.builds(lambda code, lines: Reply(code, tuple(lines)),
                        st.integers(200, 599), st.lists(texts, min_size=1, max_size=5))

    @given(st.lists(replies, min_size=1, max_size=5), st.data(), st.booleans())
    def test_any_split_property(sent: list[Reply], data: st.DataObject, bare_lf: bool) -> None:
        wire = b"".join(reply.to_bytes() for reply in sent)
        if bare_lf:
            wire = wire.replace(b"\r\n", b"\n")
        cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
        chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)])]
        assert parse_all(*chunks) == sent

    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_never_crash(blob: bytes) -> None:
        parser = ReplyParser()
        try:
            for reply in parser.feed(blob):
                assert 100 <= reply.code <= 599
        except ProtocolError:
            pass
