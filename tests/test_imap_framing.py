"""IMAP framing (maillab.imap.framing): lines, literals, LITERAL+, limits checked before "+"."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from maillab.imap.framing import FramingError, Framer, RawCommand, RawLine, tag_of
from maillab.smtp.budget import MemoryBudget


class Wire:
    """A Framer with its continuation requests and transcript collected."""

    def __init__(self, budget: MemoryBudget | None = None, **limits: int) -> None:
        self.sent: list[bytes] = []
        self.notes: list[str] = []
        self.framer = Framer(lambda wire, shown: self.sent.append(wire), self.notes.append, budget=budget,
                             **limits)

    def feed(self, data: bytes, mode: str = "command") -> list[object]:
        self.framer.receive_data(data)
        frames = []
        while (frame := self.framer.next(mode)) is not None:     # type: ignore[arg-type]
            frames.append(frame)
        return frames


def test_a_line_is_a_command_with_crlf_or_bare_lf():
    w = Wire()
    assert w.feed(b"a NOOP\r\nb NOOP\n") == [RawCommand((b"a NOOP",), ()), RawCommand((b"b NOOP",), ())]
    assert w.notes == ["a NOOP", "b NOOP"]


def test_a_command_split_across_chunks():
    w = Wire()
    assert w.feed(b"a SEL") == []
    assert w.framer.mid_command
    assert w.feed(b"ECT INBOX\r") == []
    assert w.feed(b"\n") == [RawCommand((b"a SELECT INBOX",), ())]
    assert not w.framer.mid_command


def test_a_synchronizing_literal_gets_a_continuation_and_its_octets_are_taken_verbatim():
    w = Wire()
    assert w.feed(b"a LOGIN {7}\r\n") == []
    assert w.sent == [b"+ Ready for literal data\r\n"]
    assert w.feed(b"mafu\r\n") == []                  # CRLF inside a literal is data
    assert w.feed(b"g {3}\r\n") == []
    assert len(w.sent) == 2
    assert w.feed(b"x\0y\r\n") == [RawCommand((b"a LOGIN ", b" ", b""), (b"mafu\r\ng", b"x\0y"))]


def test_literal_plus_needs_no_continuation():
    w = Wire()
    frames = w.feed(b"a APPEND INBOX {5+}\r\nhello\r\n")
    assert frames == [RawCommand((b"a APPEND INBOX ", b""), (b"hello",))]
    assert w.sent == []
    assert w.notes == ["a APPEND INBOX {5+}", "{5 bytes literal}"]     # never the literal itself


def test_a_literal_too_big_is_refused_before_the_continuation():
    w = Wire(max_literal=100)
    frames = w.feed(b"a LOGIN {101}\r\n")
    assert frames == [FramingError("a", "Literal too big: 101 octets, the limit for this command is 100", "TOOBIG")]
    assert w.sent == []                               # no "+": the client never sends it
    assert w.feed(b"b NOOP\r\n") == [RawCommand((b"b NOOP",), ())]


def test_append_has_its_own_limit_and_a_no_response():
    w = Wire(max_literal=100, max_append=1000)
    assert w.feed(b"a APPEND INBOX {1000}\r\n") == [] and w.sent
    w.framer.receive_data(b"x" * 1000 + b"\r\n")
    assert isinstance(w.framer.next(), RawCommand)
    [err] = w.feed(b"b APPEND INBOX (\\Seen) {1001}\r\n")
    assert err == FramingError("b", "Message too big: 1001 octets, the limit is 1000 (APPENDLIMIT)", "TOOBIG",
                               no=True)


def test_a_refused_literal_plus_is_read_and_dropped_as_it_comes():
    w = Wire(max_literal=10)
    [err] = w.feed(b"a LOGIN {20+}\r\n")
    assert isinstance(err, FramingError)
    assert w.feed(b"0123456789") == [] and w.framer.buffered == 0
    assert w.feed(b"0123456789 trailing\r\nb NOOP\r\n") == [RawCommand((b"b NOOP",), ())]


def test_the_whole_command_is_bounded_too():
    w = Wire(max_literal=100, max_command=150)
    w.feed(b"a LOGIN {100}\r\n")
    w.feed(b"x" * 100)
    [err] = w.feed(b" {100}\r\n")
    assert isinstance(err, FramingError) and "limit for this command is" in err.text


def test_an_overlong_line_is_dropped_as_it_arrives_and_framing_resumes():
    w = Wire(max_line=100)
    [err] = w.feed(b"a " + b"x" * 200)
    assert err == FramingError("a", "Line too long: the limit is 100 octets", "TOOBIG")
    assert w.framer.buffered <= 100
    assert w.feed(b"y" * 10_000) == [] and w.framer.buffered < 100
    assert w.feed(b"\r\nb NOOP\r\n") == [RawCommand((b"b NOOP",), ())]


def test_idle_and_sasl_modes_return_bare_lines():
    w = Wire()
    assert w.feed(b"DONE\r\n", "idle") == [RawLine(b"DONE")]
    assert w.feed(b"c2VjcmV0\r\n", "sasl") == [RawLine(b"c2VjcmV0")]
    assert w.notes == ["DONE", "(SASL response, 8 octets, hidden)"]


def test_tag_of():
    assert tag_of(b"a1 NOOP") == "a1"
    assert tag_of(b"+ x") is None and tag_of(b"noop") is None and tag_of(b"(x NOOP") is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_arbitrary_bytes_frame_without_crashing_and_stay_bounded(chunks):
    w = Wire(max_line=256, max_literal=512, max_append=1024, max_command=2048)
    for chunk in chunks:
        for frame in w.feed(chunk):
            assert isinstance(frame, (RawCommand, FramingError))
        assert w.framer.buffered <= 256 + 300 + 1024


def test_append_literals_share_a_budget_held_until_the_next_command():
    budget = MemoryBudget(100)
    a, b = Wire(budget), Wire(budget)
    assert a.feed(b"a1 APPEND INBOX {60}\r\n" + b"x" * 30) == []
    assert a.sent == [b"+ Ready for literal data\r\n"] and budget.held == 60
    assert a.framer.buffered <= 60
    [refused] = b.feed(b"b1 APPEND INBOX {60}\r\n")
    assert refused == FramingError("b1", "Too many messages being appended at once, try again later",
                                   "LIMIT", no=True)
    assert b.sent == [] and budget.held == 60
    refused, noop = b.feed(b"b2 APPEND INBOX {60+}\r\n" + b"y" * 60 + b"\r\nb3 NOOP\r\n")
    assert refused.code == "LIMIT" and noop == RawCommand((b"b3 NOOP",), ())   # type: ignore[union-attr]
    assert b.framer.buffered == 0 and budget.held == 60
    a.framer.receive_data(b"x" * 30 + b"\r\n")
    assert a.framer.next() == RawCommand((b"a1 APPEND INBOX ", b""), (b"x" * 60,))
    assert budget.held == 60                                # until the APPEND is answered:
    assert a.framer.next() is None                          # the framer is asked for the next command
    assert budget.held == 0
    assert b.feed(b"b4 APPEND INBOX {60}\r\n") == [] and budget.held == 60
    b.framer.release()
    assert budget.held == 0
