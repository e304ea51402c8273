"""The sans-IO SMTP server connection, fed bytes without a socket: the state table, every
extension, pipelining, BDAT, the smuggling sequences under each line-ending setting, AUTH and
addresses."""

from __future__ import annotations

import base64
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maillab.base.sansio import NEED_DATA, PAUSED, Authenticate, Closed, StartTls
from maillab.base.sasl import ScramLookup
from maillab.smtp.budget import MemoryBudget
from maillab.smtp.protocol import MAX_RECIPIENTS, Helo, Mail, MessageEnd, Rcpt, SmtpConnection, SmtpUsageError
from maillab.smtp.states import ALLOWED, State
from sasl_support import ScramAuth, keys, scram_dialogue

Answer = Callable[[SmtpConnection, object], None]


def accept_all(conn: SmtpConnection, event: object) -> None:
    if isinstance(event, MessageEnd):
        conn.accept("Ok: queued as Q1")
    elif isinstance(event, ScramLookup):
        conn.scram_credentials(keys("maillab", event.login))
    elif isinstance(event, Authenticate):
        if event.password == "maillab" or event.proven:
            conn.login_ok(event.proven or event.login)
        else:
            conn.login_failed()
    else:
        conn.accept()


class Session:
    """A connection fed byte scripts, its events answered by `answer`; replies as text lines."""

    def __init__(self, answer: Answer = accept_all, **options: object) -> None:
        options.setdefault("client_ip", "127.0.0.3")
        self.conn = SmtpConnection("smtp1.syr.edu", **options)    # type: ignore[arg-type]
        self.answer = answer
        self.events: list[object] = []
        self.conn.greet()
        self.banner = self.replies()

    def feed(self, *chunks: bytes) -> list[str]:
        """Feed the chunks one by one (b"" = EOF), answering events; the reply lines they caused."""
        for chunk in chunks:
            self.conn.receive_data(chunk)
            self.run()
        return self.replies()

    def run(self) -> None:
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA or isinstance(event, Closed):
                if isinstance(event, Closed) and self.closed is None:
                    self.events.append(event)
                return
            assert event is not PAUSED
            self.events.append(event)
            self.answer(self.conn, event)

    def replies(self) -> list[str]:
        return self.conn.data_to_send().decode("utf-8", "replace").splitlines()

    def codes(self, *chunks: bytes) -> list[str]:
        """The last line's code of each reply."""
        return [line[:3] for line in self.feed(*chunks) if line[3:4] != "-"]

    def messages(self) -> list[MessageEnd]:
        return [e for e in self.events if isinstance(e, MessageEnd)]

    @property
    def closed(self) -> Closed | None:
        return next((e for e in self.events if isinstance(e, Closed)), None)


def ready(**options: object) -> Session:
    s = Session(**options)
    s.feed(b"EHLO client.example\r\n")
    return s


def in_transaction(**options: object) -> Session:
    s = ready(**options)
    assert s.codes(b"MAIL FROM:<santa@northpole.org>\r\nRCPT TO:<mafudge@syr.edu>\r\n") == ["250", "250"]
    return s


# ---- greeting, HELO/EHLO ----------------------------------------------------------------

def test_banner_and_ehlo_say_what_the_server_saw_and_offer_every_extension():
    s = Session()
    assert s.banner == ["220 smtp1.syr.edu ESMTP maillab"]
    lines = s.feed(b"EHLO northpole.org\r\n")
    assert lines[0] == "250-smtp1.syr.edu Hello northpole.org [127.0.0.3]"
    assert [x[4:] for x in lines[1:]] == ["PIPELINING", "SIZE 10485760", "ENHANCEDSTATUSCODES", "8BITMIME",
                                          "DSN", "SMTPUTF8", "CHUNKING"]
    assert lines[-1].startswith("250 ") and all(x.startswith("250-") for x in lines[:-1])
    assert s.feed(b"HELO northpole.org\r\n") == ["250 smtp1.syr.edu Hello northpole.org [127.0.0.3]"]
    assert "250-AUTH PLAIN LOGIN SCRAM-SHA-256" in ready(auth=True).feed(b"EHLO again\r\n")


def test_helo_without_a_name_and_a_refused_helo():
    s = Session(answer=lambda c, e: c.reject("550 5.7.1 go away") if isinstance(e, Helo) else accept_all(c, e))
    assert s.feed(b"EHLO\r\n") == ["501 Syntax: EHLO hostname"]
    assert s.feed(b"HELO x\r\n") == ["550 5.7.1 go away"]
    assert s.conn.state is State.GREETED
    assert s.feed(b"MAIL FROM:<a@b.example>\r\n")[0].startswith("503 5.5.1 Error: send HELO/EHLO first")


# ---- the state table (RFC 5321 §4.1.4) ----------------------------------------------------

@pytest.mark.parametrize("state, script, command, reply", [
    ("greeted", b"", b"MAIL FROM:<a@b.example>", "503 5.5.1 Error: send HELO/EHLO first"),
    ("greeted", b"", b"RCPT TO:<a@b.example>", "503 5.5.1 Error: need MAIL command"),
    ("greeted", b"", b"DATA", "503 5.5.1 Error: need RCPT command"),
    ("greeted", b"", b"AUTH PLAIN", "503 5.5.1 Error: send EHLO first"),
    ("ready", b"", b"RCPT TO:<a@b.example>", "503 5.5.1 Error: need MAIL command"),
    ("ready", b"", b"DATA", "503 5.5.1 Error: need RCPT command"),
    ("mail", b"MAIL FROM:<a@b.example>\r\n", b"DATA", "503 5.5.1 Error: need RCPT command"),
    ("mail", b"MAIL FROM:<a@b.example>\r\n", b"MAIL FROM:<c@d.example>", "503 5.5.1 Error: nested MAIL command"),
    ("rcpt", b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n", b"MAIL FROM:<a@b.example>",
     "503 5.5.1 Error: nested MAIL command"),
    ("rcpt", b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n", b"AUTH PLAIN",
     "503 5.5.1 Error: MAIL transaction in progress"),
    ("bdat", b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 2\r\nhi", b"DATA",
     "503 5.5.1 Error: DATA after BDAT"),
    ("bdat", b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 2\r\nhi", b"RCPT TO:<e@f.example>",
     "503 5.5.1 Error: RCPT after BDAT"),
    ("bdat", b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 2\r\nhi", b"EHLO x",
     "503 5.5.1 Error: only BDAT, RSET, QUIT or NOOP"),
])
def test_a_command_out_of_order_is_a_503_with_the_reason(state, script, command, reply):
    s = Session(auth=True)
    if state != "greeted":
        s.feed(b"EHLO x\r\n" + script)
    assert s.conn.state.value == state
    assert s.feed(command + b"\r\n")[0].startswith(reply)
    assert s.conn.state.value == state                  # a refused command changes nothing


def test_every_state_allows_noop_rset_and_quit_and_the_table_knows_each_command():
    for state, commands in ALLOWED.items():
        assert {"NOOP", "RSET", "QUIT"} <= commands, state
    for command in (b"NOOP", b"RSET", b"HELP", b"VRFY x"):
        assert Session().codes(command + b"\r\n")[0] in ("250", "214", "252")


def test_rset_and_ehlo_end_the_transaction():
    s = in_transaction()
    assert s.feed(b"RSET\r\n") == ["250 2.0.0 OK"]
    assert s.conn.state is State.READY
    assert s.codes(b"DATA\r\n") == ["503"]
    s = in_transaction()
    s.feed(b"EHLO again\r\n")
    assert s.codes(b"RCPT TO:<a@b.example>\r\n") == ["503"]


def test_extension_commands_need_ehlo_not_helo():
    s = Session(auth=True)
    s.feed(b"HELO x\r\n")
    assert s.feed(b"AUTH PLAIN\r\n")[0].startswith("503 5.5.1 Error: send EHLO first")
    s.feed(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
    assert s.feed(b"BDAT 3 LAST\r\nabc")[0].startswith("503 5.5.1 Error: send EHLO first")
    assert s.codes(b"RSET\r\nMAIL FROM:<a@b.example> SIZE=10\r\n") == ["250", "555"]


def test_unknown_commands_and_garbage():
    s = ready()
    assert s.feed(b"\x01\x02garbage\r\n") == ["500 5.5.2 Error: command not recognized"]
    assert s.feed(b"\r\n") == ["500 5.5.2 Error: bad syntax"]
    assert s.feed(b"STARTTLS\r\n") == ["502 5.5.1 Error: command not implemented"]   # not offered (Postfix)
    assert s.feed(b"EXPN staff\r\n")[0].startswith("502 5.5.1")


def test_overlong_command_lines_are_dropped_as_they_arrive():
    s = ready()
    assert s.feed(b"NOOP " + b"x" * 600 + b"\r\n")[0].startswith("500 5.5.2 Error: line too long")
    s.conn.receive_data(b"NOOP " + b"y" * 200_000)
    s.run()
    assert len(s.conn._in) < 20_000                           # not kept while it grows
    assert s.feed(b"\r\nNOOP\r\n") == ["500 5.5.2 Error: line too long (RFC 5321 §4.5.3.1.4)", "250 2.0.0 OK"]


def test_too_many_errors_close_with_421():
    s = ready()
    replies = s.feed(b"BOGUS\r\n" * 25)
    assert replies[19] == "500 5.5.2 Error: command not recognized"
    assert replies[20] == "421 4.7.0 Too many errors, closing connection"
    assert len(replies) == 21 and s.closed is not None


def test_an_answer_no_event_asked_for_is_our_bug():
    s = ready()
    with pytest.raises(SmtpUsageError):
        s.conn.accept()
    s.conn.receive_data(b"MAIL FROM:<a@b.example>\r\n")
    assert isinstance(s.conn.next_event(), Mail)
    assert s.conn.next_event() is PAUSED
    with pytest.raises(SmtpUsageError):
        s.conn.login_ok("x")
    with pytest.raises(SmtpUsageError):
        s.conn.reject("250 fine")


# ---- pipelining (RFC 2920) ------------------------------------------------------------------

def test_a_pipelined_group_is_answered_in_order_in_one_batch():
    s = ready()
    out = s.feed(b"MAIL FROM:<santa@northpole.org>\r\nRCPT TO:<mafudge@syr.edu>\r\nRCPT TO:<bad@>\r\n"
                 b"RCPT TO:<relstad@syr.edu>\r\nDATA\r\n")
    assert [x[:3] for x in out] == ["250", "250", "501", "250", "354"]
    assert s.feed(b"Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n") == ["250 2.0.0 Ok: queued as Q1", "221 2.0.0 Bye"]
    assert s.messages()[0].envelope.recipients == ("mafudge@syr.edu", "relstad@syr.edu")


def test_while_an_event_waits_nothing_further_is_read():
    s = ready()
    s.conn.receive_data(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nNOOP\r\n")
    assert isinstance(s.conn.next_event(), Mail)
    assert s.conn.next_event() is PAUSED and s.conn.next_event() is PAUSED
    assert s.conn.data_to_send() == b""
    s.conn.reject("451 4.3.0 try again later")
    s.run()
    assert s.replies() == ["451 4.3.0 try again later", "503 5.5.1 Error: need MAIL command", "250 2.0.0 OK"]


def test_everything_read_before_eof_is_answered():
    s = Session()
    assert s.feed(b"EHLO x\r\nQUIT\r\n", b"")[-1] == "221 2.0.0 Bye"
    s = Session()
    out = s.feed(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n", b"")
    assert [x[:3] for x in out if x[3] == " "] == ["250", "250", "250", "354", "250", "221"]
    assert len(s.messages()) == 1
    s = Session()
    assert s.feed(b"EHLO x\r\nNOOP", b"")[-1] == "250 2.0.0 OK"       # an unended last line too
    assert s.closed == Closed("closed")


def test_eof_in_the_middle_of_a_message_accepts_nothing():
    s = in_transaction()
    s.feed(b"DATA\r\nSubject: half\r\n", b"")
    assert s.messages() == [] and s.closed is not None


# ---- MAIL and RCPT: addresses (RFC 5321 §4.1.2) ---------------------------------------------

@pytest.mark.parametrize("path, address", [
    ("<mafudge@syr.edu>", "mafudge@syr.edu"),
    (" <mafudge@syr.edu>", "mafudge@syr.edu"),
    ("mafudge@syr.edu", "mafudge@syr.edu"),                         # typed in nc, no brackets
    ('<"quoted local"@syr.edu>', '"quoted local"@syr.edu'),
    ('<"a>b"@syr.edu>', '"a>b"@syr.edu'),
    ("<@relay.example,@other.example:mafudge@syr.edu>", "mafudge@syr.edu"),   # source route dropped
    ("<user@[127.0.0.1]>", "user@[127.0.0.1]"),
    ("<user@[IPv6:::1]>", "user@[IPv6:::1]"),
    ("<first.last+tag@mail.example.org>", "first.last+tag@mail.example.org"),
    ("<postmaster>", "postmaster"),
    ("<PostMaster>", "postmaster"),
])
def test_good_recipient_paths(path, address):
    s = ready()
    s.feed(b"MAIL FROM:<>\r\n")
    assert s.feed(f"RCPT TO:{path}\r\n".encode()) == ["250 2.1.5 Ok"]
    assert s.events[-1] == Rcpt(address, s.events[-1].dsn)


@pytest.mark.parametrize("path, reply", [
    ("<x@", "501 5.1.3 Bad address syntax: missing '>'"),
    ("<a@[", "501 5.1.3 Bad address syntax: missing '>'"),
    ("<a@[1.2.3>", "501 5.1.2 Bad address syntax: unterminated address literal"),
    ("<mafudge@syr.edu", "501 5.1.3 Bad address syntax: missing '>'"),
    ("<x@>", "501 5.1.2 Bad address syntax: missing domain"),
    ("<x>", "501 5.1.3 Bad address syntax: need user@domain"),
    ("<>", "501 5.1.3 Bad address syntax: empty address"),
    ("<a b@c.example>", "501 5.1.3 Bad address syntax: bad character ' '"),
    ("<a@-bad-.example>", "501 5.1.2 Bad address syntax: bad domain name"),
    ("<a@b.example>junk", "501 5.1.3 Bad address syntax: junk after"),
    ("<<<>>>", "501 5.1.3 Bad address syntax: '<' inside"),
    ("<a\x00b@c.example>", "501 5.1.3 Bad address syntax: control character"),
    ("<a@b.example> FOO=1", "555 5.5.4 Unsupported option: FOO"),
    ("<a@b.example> NOTIFY=SOMETIMES", "501 5.5.4 Bad NOTIFY parameter"),
    ("<a@b.example> NOTIFY=NEVER,DELAY", "501 5.5.4 Bad NOTIFY parameter"),
    ("<a@b.example> ORCPT=rfc822", "501 5.5.4 Bad ORCPT parameter"),
    ("<" + "x" * 65 + "@b.example>", "501 5.1.3 Bad address syntax: local part over 64 octets"),
])
def test_bad_recipient_paths_get_a_clear_501(path, reply):
    s = ready()
    s.feed(b"MAIL FROM:<a@b.example>\r\n")
    assert s.feed(f"RCPT TO:{path}\r\n".encode())[0].startswith(reply)
    assert s.conn.state is State.MAIL


def test_invalid_utf8_in_an_address():
    s = ready()
    assert s.feed(b"MAIL FROM:<\xff\xfe@northpole.org>\r\n")[0].startswith("501 5.6.7")


def test_a_utf8_address_needs_smtputf8():
    s = ready()
    assert s.feed("MAIL FROM:<jürgen@例え.jp>\r\n".encode())[0].startswith("553 5.6.7")
    assert s.feed("MAIL FROM:<jürgen@例え.jp> SMTPUTF8\r\n".encode()) == ["250 2.1.0 Ok"]
    assert s.feed("RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>\r\n".encode()) == ["250 2.1.5 Ok"]
    assert s.events[-2].utf8 is True
    s = ready()
    s.feed(b"MAIL FROM:<a@b.example>\r\n")
    assert s.feed("RCPT TO:<jürgen@b.example>\r\n".encode())[0].startswith("553 5.6.7")


def test_mail_parameters_size_body_smtputf8_auth_and_dsn():
    s = ready()
    assert s.feed(b"MAIL FROM:<a@b.example> SIZE=10485761\r\n") == ["552 5.3.4 Message size exceeds fixed limit"]
    assert s.feed(b"MAIL FROM:<a@b.example> SIZE=x\r\n")[0].startswith("501 5.5.4 Bad SIZE")
    assert s.feed(b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n")[0].startswith("501 5.5.4 Bad BODY")
    assert s.feed(b"MAIL FROM:<a@b.example> RET=ALL\r\n")[0].startswith("501 5.5.4 Bad RET")
    assert s.feed(b"MAIL FROM:<a@b.example> SIZE=1 SIZE=2\r\n")[0].startswith("501 5.5.4 Parameter SIZE given twice")
    assert s.feed(b"MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ+2B314 AUTH=<>\r\n") \
        == ["250 2.1.0 Ok"]
    mail = s.events[-1]
    assert (mail.size, mail.body, mail.dsn.ret, mail.dsn.envid) == (1000, "8BITMIME", "HDRS", "QQ+314")
    assert s.feed(b"RCPT TO:<c@d.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;c+40d.example\r\n") == ["250 2.1.5 Ok"]
    rcpt = s.events[-1]
    assert rcpt.dsn.notify == ("SUCCESS", "DELAY") and rcpt.dsn.orcpt == "rfc822;c@d.example"
    s.feed(b"RCPT TO:<e@f.example> NOTIFY=NEVER\r\nDATA\r\nhi\r\n.\r\n")
    envelope = s.messages()[0].envelope
    assert [r.dsn.notify for r in envelope.rcpts] == [("SUCCESS", "DELAY"), ("NEVER",)]
    assert envelope.mail.dsn.ret == "HDRS"


def test_too_many_recipients():
    s = in_transaction()
    s.feed(b"".join(b"RCPT TO:<r%d@syr.edu>\r\n" % n for n in range(MAX_RECIPIENTS - 1)))
    assert s.feed(b"RCPT TO:<one.more@syr.edu>\r\n") == ["452 4.5.3 Error: too many recipients"]


def test_submission_needs_auth_before_mail():
    s = ready(auth=True, auth_required=True)
    assert s.feed(b"MAIL FROM:<a@b.example>\r\n") == ["530 5.7.0 Authentication required"]


# ---- DATA: dot-unstuffing, limits, NUL ----------------------------------------------------

def test_data_unstuffs_dots_and_normalises_line_endings():
    s = in_transaction()
    assert s.feed(b"DATA\r\n") == ["354 End data with <CR><LF>.<CR><LF>"]
    s.feed(b"Subject: x\r\n\r\n..leading\r\nbare lf\nend\r\n", b".\r\n")
    assert s.messages()[0].content == b"Subject: x\r\n\r\n.leading\r\nbare lf\r\nend\r\n"


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7])
def test_the_end_line_is_found_however_the_bytes_are_split(split):
    data = b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nNOOP\r\n"
    s = in_transaction()
    s.feed(*(data[i:i + split] for i in range(0, len(data), split)))
    assert s.messages()[0].content == b"Subject: x\r\n\r\nhi\r\n"
    assert s.events[-1] == s.messages()[0]


def test_a_big_message_spills_and_the_budget_comes_back(tmp_path):
    budget = MemoryBudget(1 << 20)
    s = in_transaction(spill_folder=tmp_path, budget=budget)
    seen = []
    s.answer = lambda c, e: (e.spilled.seek(0), seen.append((e.content, e.spilled.read())), c.accept("Ok: queued as Q9"))
    s.feed(b"DATA\r\n", *([b"y" * 998 + b"\r\n"] * 400), b".\r\n")
    content, spilled = seen[0]
    assert content == b"" and len(spilled) == 400_000
    assert budget.held == 0 and list(tmp_path.iterdir()) == []


def test_limits_in_data_are_refused_after_the_end_line():
    s = in_transaction(max_size=1000)
    assert s.feed(b"DATA\r\n" + b"x" * 998 + b"\r\n" * 3 + b".\r\n")[-1] == "552 5.3.4 Error: message file too big"
    assert s.messages() == [] and s.conn.state is State.READY
    s = in_transaction()
    assert s.feed(b"DATA\r\n" + b"w" * 1200 + b"\r\n.\r\n")[-1].startswith("500 5.5.2 Error: line too long")


def test_a_nul_in_the_body_is_refused():
    s = in_transaction()
    assert s.feed(b"DATA\r\nSubject: x\r\n\r\na\x00b\r\n.\r\n")[-1].startswith("554 5.6.0")
    assert s.messages() == []
    assert s.codes(b"MAIL FROM:<a@b.example>\r\n") == ["250"]          # the session goes on


def test_a_refused_message_ends_the_transaction_and_its_body_is_released(tmp_path):
    budget = MemoryBudget()
    s = in_transaction(budget=budget)
    s.answer = lambda c, e: c.reject("554 5.7.1 looks like spam") if isinstance(e, MessageEnd) else accept_all(c, e)
    assert s.feed(b"DATA\r\nhi\r\n.\r\n")[-1] == "554 5.7.1 looks like spam"
    assert s.conn.state is State.READY and budget.held == 0


# ---- SMTP smuggling: the end of data (datareader.py's rule) --------------------------------

SMUGGLED = b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@syr.edu>\r\nDATA\r\nSubject: two\r\n\r\nsecond\r\n"
SEQUENCES = {"<LF>.<LF>": b"\n.\n", "<LF>.<CR><LF>": b"\n.\r\n", "<CR><LF>.<LF>": b"\r\n.\n"}


@pytest.mark.parametrize("setting", ["lenient", "strict", "pedantic"])
@pytest.mark.parametrize("name", list(SEQUENCES))
def test_no_smuggled_end_of_data_in_a_crlf_session(setting, name):
    s = in_transaction(line_endings=setting)
    s.feed(b"DATA\r\n")
    s.feed(b"Subject: one\r\n\r\nfirst" + SEQUENCES[name] + SMUGGLED + b".\r\nQUIT\r\n")
    if setting == "pedantic":
        # pedantic: the bare LF itself is refused, the session closed, nothing accepted
        assert s.messages() == [] and s.closed == Closed("bare LF received")
        return
    assert len(s.messages()) == 1                           # one message, the "second" inside it
    assert b"RCPT TO:<victim@syr.edu>" in s.messages()[0].content
    assert [e for e in s.events if isinstance(e, Mail)][1:] == []


def test_lenient_lets_a_person_at_nc_end_with_a_bare_lf_dot():
    s = Session()
    out = s.feed(b"helo northpole.org\n", b"mail from: santa@northpole.org\n", b"rcpt to: mafudge@syr.edu\n",
                 b"data\n", b"Subject: hi\n\nfyi.\n", b".\n", b"quit\n")
    assert out[-2].startswith("250 2.0.0 Ok: queued as") and out[-1] == "221 2.0.0 Bye"
    assert s.messages()[0].content == b"Subject: hi\r\n\r\nfyi.\r\n"
    # but never the mixed forms, even at nc
    s = in_transaction()
    s.feed(b"data\n", b"a\r\n.\nb\n.\r\nc\n.\n")
    assert s.messages()[0].content == b"a\r\n\r\nb\r\n\r\nc\r\n"


def test_strict_takes_bare_lf_lines_but_only_crlf_dot_crlf_ends():
    s = in_transaction(line_endings="strict")
    s.feed(b"data\n", b"a\nb\n.\n")
    assert s.messages() == []
    s.feed(b"c\r\n.\r\n")
    assert s.messages()[0].content == b"a\r\nb\r\n\r\nc\r\n"
    assert s.feed(b"NOOP\n") == ["250 2.0.0 OK"]


def test_pedantic_refuses_a_bare_lf_command():
    s = Session(line_endings="pedantic")
    assert s.feed(b"EHLO x\n") == ["550 5.5.2 Error: bare <LF> received (RFC 5321 §2.3.8: lines end in <CR><LF>)"]
    assert s.closed == Closed("bare LF received")
    s = in_transaction(line_endings="pedantic")
    assert s.feed(b"DATA\r\nok\r\n.\r\n")[-1].startswith("250 2.0.0")


def test_an_unknown_line_ending_setting_is_refused():
    with pytest.raises(ValueError):
        SmtpConnection("x", line_endings="loose")


# ---- BDAT (RFC 3030) ----------------------------------------------------------------------

def test_bdat_chunks_are_binary_safe_and_exact():
    s = in_transaction()
    body = b"Subject: b\r\n\r\n.\r\nline\r\n"
    out = s.feed(b"BDAT 10\r\n" + body[:10] + b"BDAT %d LAST\r\n" % (len(body) - 10), body[10:] + b"QUIT\r\n")
    assert out == ["250 2.0.0 Ok: 10 octets", "250 2.0.0 Ok: queued as Q1", "221 2.0.0 Bye"]
    assert s.messages()[0].content == body                   # the "." line stays as sent: no unstuffing


def test_a_refused_bdat_still_takes_its_octets():
    s = ready()
    out = s.feed(b"BDAT 14 LAST\r\nMAIL FROM:<x\r\nNOOP\r\n")
    assert out == ["503 5.5.1 Error: need RCPT command", "250 2.0.0 OK"]
    assert [e for e in s.events if isinstance(e, Mail)] == []


def test_bdat_syntax_zero_last_and_the_size_limit():
    s = in_transaction(max_size=10)
    assert s.feed(b"BDAT x\r\n")[0].startswith("501 5.5.4 Syntax: BDAT")
    assert s.feed(b"BDAT 6\r\n123456")[0] == "250 2.0.0 Ok: 6 octets"
    assert s.feed(b"BDAT 6 LAST\r\n789012") == ["552 5.3.4 Error: message file too big"]
    assert s.messages() == []
    s = in_transaction()
    assert s.feed(b"BDAT 0 LAST\r\n") == ["250 2.0.0 Ok: queued as Q1"]
    assert s.messages()[0].content == b""


def test_eof_inside_a_chunk_accepts_nothing():
    s = in_transaction()
    s.feed(b"BDAT 100 LAST\r\nonly some", b"")
    assert s.messages() == [] and s.closed is not None


# ---- AUTH (RFC 4954) ------------------------------------------------------------------------

def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_auth_plain_with_and_without_initial_response():
    s = ready(auth=True)
    assert s.feed(b"AUTH PLAIN " + b64(b"\x00santa@northpole.org\x00maillab") + b"\r\n") \
        == ["235 2.7.0 Authentication successful"]
    assert s.conn.login == "santa@northpole.org"
    assert s.feed(b"AUTH PLAIN\r\n")[0].startswith("503 5.5.1 Error: already authenticated")
    s = ready(auth=True)
    assert s.feed(b"AUTH PLAIN\r\n") == ["334 "]                     # RFC 4954 §4: "334" SP, then nothing
    assert s.feed(b64(b"\x00santa@northpole.org\x00wrong") + b"\r\n") == ["535 5.7.8 Error: authentication failed"]
    assert s.conn.login is None and s.conn.state is State.READY


@pytest.mark.parametrize("initial", [True, False])
def test_auth_scram_sha_256_server_final_then_235(initial):
    s = ready(auth=True)
    auth = ScramAuth("santa@northpole.org", "maillab")
    seen = scram_dialogue(lambda line: s.feed(line.encode() + b"\r\n")[-1], "AUTH SCRAM-SHA-256", "334 ", auth,
                          initial)
    assert auth.verified and seen[-1] == "235 2.7.0 Authentication successful"
    assert s.conn.login == "santa@northpole.org"
    wrong = ready(auth=True)
    seen = scram_dialogue(lambda line: wrong.feed(line.encode() + b"\r\n")[-1], "AUTH SCRAM-SHA-256", "334 ",
                          ScramAuth("santa@northpole.org", "nope"), initial)
    assert seen[-1] == "535 5.7.8 Error: authentication failed" and wrong.conn.state is State.READY
    refused = ready(auth=True)                   # channel binding asked for: not offered
    assert refused.feed(b"AUTH SCRAM-SHA-256 " + b64(b"p=tls-unique,,n=santa,r=abc") + b"\r\n")[-1] \
        .startswith("501 5.5.2 Error: SCRAM-SHA-256: channel binding is not supported")
    assert refused.codes(b"NOOP\r\n") == ["250"]


def test_auth_login_prompts_and_cancel():
    s = ready(auth=True)
    assert s.feed(b"AUTH LOGIN\r\n") == ["334 VXNlcm5hbWU6"]                   # "Username:"
    assert s.feed(b64(b"santa@northpole.org") + b"\r\n") == ["334 UGFzc3dvcmQ6"]  # "Password:"
    assert s.feed(b64(b"maillab") + b"\r\n") == ["235 2.7.0 Authentication successful"]
    s = ready(auth=True)
    assert s.feed(b"AUTH LOGIN " + b64(b"santa@northpole.org") + b"\r\n") == ["334 UGFzc3dvcmQ6"]
    assert s.feed(b"*\r\n") == ["501 5.7.0 Authentication aborted"]
    assert s.conn.state is State.READY and s.codes(b"NOOP\r\n") == ["250"]


@pytest.mark.parametrize("script, reply", [
    (b"AUTH PLAIN !!!\r\n", "501 5.5.2 Error: cannot decode"),
    (b"AUTH PLAIN " + b64(b"no nuls here") + b"\r\n", "501 5.5.2 Error: Malformed PLAIN"),
    (b"AUTH PLAIN " + b64(b"\x00santa@northpole.org\x00\xff\xfe") + b"\r\n", "501 5.5.2 Error: Invalid UTF-8"),
    (b"AUTH LOGIN " + b64(b"santa@northpole.org") + b"\r\n" + b64(b"\xff\xfe") + b"\r\n",
     "501 5.5.2 Error: Invalid UTF-8"),
    (b"AUTH LOGIN " + b64(b"\xc3") + b"\r\n", "501 5.5.2 Error: Invalid UTF-8"),
    (b"AUTH CRAM-MD5\r\n", "504 5.5.4 Unrecognized authentication type"),
    (b"AUTH\r\n", "501 5.5.4 Syntax: AUTH"),
])
def test_auth_edge_cases_are_clean_replies_never_exceptions(script, reply):
    s = ready(auth=True)
    assert s.feed(script)[-1].startswith(reply)
    assert not any(isinstance(e, Authenticate) for e in s.events)
    assert s.conn.state is State.READY


def test_auth_not_offered():
    s = ready()
    assert s.feed(b"AUTH PLAIN\r\n") == ["503 5.5.1 Error: authentication not enabled"]


def test_ten_failed_logins_end_the_session():
    s = ready(auth=True)
    out = s.feed(b"AUTH PLAIN " + b64(b"\x00a@b.example\x00bad") + b"\r\n" * 1)
    for _ in range(9):
        out += s.feed(b"AUTH PLAIN " + b64(b"\x00a@b.example\x00bad") + b"\r\n")
    assert out[-1] == "421 4.7.0 Too many errors, closing connection" and s.closed is not None


# ---- STARTTLS seam (RFC 3207) ---------------------------------------------------------------

def test_starttls_drops_what_was_sent_before_the_handshake():
    s = Session(tls_available=True, answer=lambda c, e: c.tls_started() if isinstance(e, StartTls)
                else accept_all(c, e))
    assert "250-STARTTLS" in s.feed(b"EHLO x\r\n")
    assert s.feed(b"STARTTLS\r\nMAIL FROM:<injected@x.example>\r\n") == ["220 2.0.0 Ready to start TLS"]
    assert not any(isinstance(e, Mail) for e in s.events)
    assert s.conn.tls_active and s.conn.state is State.GREETED
    assert "250-STARTTLS" not in s.feed(b"EHLO x\r\n")


def test_without_plaintext_auth_auth_waits_for_tls():
    s = Session(auth=True, tls_available=True, plaintext_auth=False,
                answer=lambda c, e: c.tls_started() if isinstance(e, StartTls) else accept_all(c, e))
    ehlo = s.feed(b"EHLO x\r\n")
    assert "250-STARTTLS" in ehlo and not any("AUTH" in line for line in ehlo)
    plain = base64.b64encode(b"\0mafudge@syr.edu\0maillab")
    assert s.feed(b"AUTH PLAIN " + plain + b"\r\n") == ["530 5.7.0 Must issue a STARTTLS command first"]
    assert not any(isinstance(e, Authenticate) for e in s.events)
    s.feed(b"STARTTLS\r\n")
    assert "250-AUTH PLAIN LOGIN" in "\n".join(s.feed(b"EHLO x\r\n"))
    assert s.feed(b"AUTH PLAIN " + plain + b"\r\n") == ["235 2.7.0 Authentication successful"]


# ---- time-out and abort ---------------------------------------------------------------------

def test_timeout_and_abort_say_421():
    s = ready()
    s.conn.timed_out()
    assert s.replies() == ["421 4.4.2 smtp1.syr.edu Error: timeout exceeded"]
    assert s.conn.next_event() == Closed("timeout")
    s = ready()
    s.conn.abort("server stopped", "Service shutting down")
    assert s.replies() == ["421 4.3.0 smtp1.syr.edu Service shutting down"]


def test_the_transcript_shows_commands_message_lines_and_replies():
    s = in_transaction()
    s.conn.transcript()
    s.feed(b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    assert s.conn.transcript() == [
        ("client", "DATA"), ("server", "354 End data with <CR><LF>.<CR><LF>"),
        ("client", "Subject: x"), ("client", ""), ("client", "hi"),
        ("note", "(message body: 3 lines, 18 bytes)"), ("client", "."),
        ("server", "250 2.0.0 Ok: queued as Q1"), ("client", "QUIT"), ("server", "221 2.0.0 Bye")]


# ---- any bytes, any chunking ------------------------------------------------------------------

_PIECES = [b"EHLO x\r\n", b"HELO y\n", b"MAIL FROM:<a@b.example>\r\n", b"MAIL FROM:<> SIZE=5\r\n",
           b"RCPT TO:<d@e.example> NOTIFY=NEVER\r\n", b"RCPT TO:<postmaster>\r\n", b"DATA\r\n", b"DATA\n",
           b"hi\r\n", b".\r\n", b"\n.\n", b"..x\r\n", b"BDAT 3\r\n", b"BDAT 2 LAST\r\n", b"abc",
           b"AUTH PLAIN\r\n", b"AUTH LOGIN\r\n", b"dXNlcg==\r\n", b"*\r\n", b"RSET\r\n", b"NOOP\r\n",
           b"\x00", b"\r", b"\n", b"\xff", b"x" * 700, b"QUIT\r\n"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=25), st.binary(max_size=40),
       st.lists(st.integers(1, 60), max_size=15), st.sampled_from(["lenient", "strict", "pedantic"]))
def test_any_bytes_in_any_chunking_give_the_same_replies_and_never_an_exception(pieces, noise, cuts, setting):
    stream = b"".join(pieces) + noise
    whole = Session(auth=True, line_endings=setting)
    expected = whole.feed(*([stream] if stream else []), b"")
    chunks, at = [], 0
    for step in cuts:
        chunks.append(stream[at:at + step])
        at += step
    chunked = Session(auth=True, line_endings=setting)
    assert chunked.feed(*[c for c in chunks + [stream[at:]] if c], b"") == expected
    assert [type(e) for e in chunked.events] == [type(e) for e in whole.events]
    assert chunked.closed is not None                            # EOF always ends it cleanly
    for line in expected:
        assert line[:3].isdigit() and line[3:4] in (" ", "-", "")
