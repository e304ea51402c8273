"""The MUA's sans-IO IMAP client (maillab/mua/imap_protocol.py) fed bytes: the greeting, every
untagged response it interprets, FETCH items and ENVELOPE (NIL, groups), literals and literal8,
the same events whatever the split, continuations (APPEND without LITERAL+, SASL), the MOVE
fallback, STARTTLS discarding what came before TLS, the masked transcript and bad input."""

from __future__ import annotations

import pytest

from maillab.base.sansio import NEED_DATA, Closed, StartTls
from maillab.mua import imap_wire
from maillab.mua.imap_protocol import (
    Address, Capability, Code, Completed, Continuation, Exists, Expunge, Fetch, Flags, Greeting,
    ImapClientConnection, ListItem, Other, Recent, Search, StatusItems, Untagged)

GREETING = b"* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE STARTTLS] smtp1.syr.edu ready\r\n"

ENVELOPE = (b'(ENVELOPE ("Fri, 4 Dec 2026 04:00:00 +0000" {11}\r\nHello "you"'
            b' (("Santa \\"Claus\\"" NIL "santa" "northpole.org")) NIL NIL'
            b' ((NIL NIL "elves" NIL)("Bob" NIL "bob" "syr.edu")(NIL NIL NIL NIL)("Al" NIL "al" "syr.edu"))'
            b' NIL NIL "<a@b>" "<m@syr.edu>") UID 7 FLAGS (\\Seen $Forwarded) RFC822.SIZE 1234'
            b' INTERNALDATE "04-Dec-2026 04:00:00 +0000" MODSEQ (42)'
            b' BODY[HEADER.FIELDS (FROM SUBJECT)] {5}\r\nFrom:'
            b' BINARY[1] ~{3}\r\n\x00\x01\x02 BODY[]<0> "x")')
SERVER = (GREETING
          + b"* CAPABILITY IMAP4rev1 MOVE UIDPLUS\r\n"
          + b"* 3 EXISTS\r\n* 0 RECENT\r\n* 2 EXPUNGE\r\n"
          + b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
          + b"* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
          + b"* OK [PERMANENTFLAGS (\\Seen \\*)] Limited\r\n"
          + b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
          + b'* LIST (\\Noselect) NIL {21}\r\nEntw&APw-rfe/Sp&AOQ-t\r\n'
          + b'* STATUS "INBOX" (MESSAGES 3 UNSEEN 1 UIDNEXT 9)\r\n'
          + b"* SEARCH 2 4 9\r\n* SEARCH\r\n"
          + b"* 1 FETCH " + ENVELOPE + b"\r\n"
          + b"* ENABLED CONDSTORE\r\n"
          + b"A0001 OK [APPENDUID 1700000000 9] Append completed\r\n")


def connection(greeting: bytes = GREETING) -> ImapClientConnection:
    conn = ImapClientConnection()
    conn.receive_data(greeting)
    assert isinstance(conn.next_event(), Greeting)
    return conn


def events(conn: ImapClientConnection) -> list[object]:
    out = []
    while (ev := conn.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


def run(chunks: list[bytes]) -> tuple[list[object], ImapClientConnection]:
    conn = ImapClientConnection()
    conn.append("INBOX", b"hi\r\n")          # A0001, so the tagged completion has a command
    for c in chunks:
        conn.receive_data(c)
    return events(conn), conn


def test_every_response_kind_parsed():
    evs, conn = run([SERVER])
    greeting, capability, exists, recent, expunge, flags, uidvalidity, permanent, sent, drafts, status, \
        search, empty, fetch, other, completed = evs
    assert greeting == Greeting("OK", Code("CAPABILITY", ("IMAP4rev1", "LITERAL+", "SASL-IR", "IDLE", "STARTTLS")),
                                "smtp1.syr.edu ready")
    assert capability == Capability(("IMAP4rev1", "MOVE", "UIDPLUS"))
    assert conn.capabilities == {"IMAP4REV1", "MOVE", "UIDPLUS"}
    assert (exists, recent, expunge) == (Exists(3), Recent(0), Expunge(2))
    assert flags == Flags(("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"))
    assert uidvalidity == Untagged("OK", Code("UIDVALIDITY", 1700000000), "UIDs valid")
    assert permanent.code == Code("PERMANENTFLAGS", ("\\Seen", "\\*"))
    assert sent == ListItem(("\\HasNoChildren", "\\Sent"), "/", "Sent")
    assert drafts == ListItem(("\\Noselect",), None, "Entwürfe/Spät")
    assert status == StatusItems("INBOX", {"MESSAGES": 3, "UNSEEN": 1, "UIDNEXT": 9})
    assert (search, empty) == (Search((2, 4, 9)), Search(()))
    assert isinstance(fetch, Fetch) and fetch.seq == 1
    assert (fetch.uid, fetch.flags, fetch.size, fetch.modseq) == (7, ("\\Seen", "$Forwarded"), 1234, 42)
    assert fetch.internaldate == "04-Dec-2026 04:00:00 +0000"
    assert fetch.sections == {"BODY[HEADER.FIELDS (FROM SUBJECT)]": b"From:", "BINARY[1]": b"\x00\x01\x02",
                              "BODY[]<0>": b"x"}
    assert other == Other("ENABLED", ("CONDSTORE",))
    assert completed == Completed("A0001", "OK", Code("APPENDUID", (1700000000, "9")), "Append completed", "APPEND")


def test_envelope_with_nil_escapes_a_literal_subject_and_groups():
    env = run([SERVER])[0][13].envelope
    assert env.date == "Fri, 4 Dec 2026 04:00:00 +0000"
    assert env.subject == 'Hello "you"'
    assert env.from_ == (Address('Santa "Claus"', "santa", "northpole.org"),)
    assert env.sender == env.reply_to == () and env.cc == env.bcc == ()
    assert env.to == (Address("Bob", "bob", "syr.edu", group="elves"), Address("Al", "al", "syr.edu"))
    assert env.to[0].address == "bob@syr.edu"
    assert (env.in_reply_to, env.message_id) == ("<a@b>", "<m@syr.edu>")


def test_the_same_events_whatever_the_split():
    whole = run([SERVER])[0]
    assert run([SERVER[i:i + 1] for i in range(len(SERVER))])[0] == whole
    for cut in range(1, len(SERVER), 7):
        assert run([SERVER[:cut], SERVER[cut:]])[0] == whole


def test_login_masked_literals_shown_as_octets():
    conn = connection()
    login = conn.login("mafudge@syr.edu", "maillab")
    append = conn.append("Sent", b"Subject: x\r\n\r\nsecret body\r\n", ["\\Seen"])
    wire = conn.data_to_send()
    assert wire == (b'A0001 LOGIN "mafudge@syr.edu" "maillab"\r\n'
                    b'A0002 APPEND "Sent" (\\Seen) {27+}\r\nSubject: x\r\n\r\nsecret body\r\n\r\n')
    shown = " ".join(text for _, text in conn.transcript())
    assert "maillab\"" not in shown and "A0001 LOGIN \"mafudge@syr.edu\" ***" in shown
    assert "secret body" not in shown and "27 octets" in shown
    conn.receive_data(f"{login} OK [CAPABILITY IMAP4rev1 MOVE] Logged in\r\n{append} NO [TRYCREATE] No such\r\n"
                      .encode())
    assert events(conn) == [Completed(login, "OK", Code("CAPABILITY", ("IMAP4rev1", "MOVE")), "Logged in", "LOGIN"),
                            Completed(append, "NO", Code("TRYCREATE"), "No such", "APPEND")]
    assert conn.capabilities == {"IMAP4REV1", "MOVE"}


def test_a_literal_in_a_server_line_is_shown_as_its_size_only():
    conn = connection()
    tag = conn.uid_fetch("7", "BODY.PEEK[]")
    assert conn.data_to_send() == f"{tag} UID FETCH 7 BODY.PEEK[]\r\n".encode()
    conn.transcript()
    conn.receive_data(b"* 1 FETCH (UID 7 BODY[] {12}\r\nsecret words)\r\n" + f"{tag} OK done\r\n".encode())
    assert events(conn)[0].sections == {"BODY[]": b"secret words"}
    lines = conn.transcript()
    assert all("secret" not in text for _, text in lines) and "12 octets" in lines[0][1]


def test_append_without_literal_plus_waits_for_the_continuation():
    conn = connection(b"* OK IMAP4rev1 ready\r\n")
    tag = conn.append("INBOX", b"abc")
    after = conn.capability()
    assert conn.data_to_send() == f'{tag} APPEND "INBOX" {{3}}\r\n'.encode()
    assert conn.data_to_send() == b""              # the literal and the commands after it wait
    conn.receive_data(b"+ Ready for literal data\r\n")
    assert conn.data_to_send() == f"abc\r\n{after} CAPABILITY\r\n".encode()
    assert events(conn) == []


def test_a_refused_literal_is_never_sent():
    conn = connection(b"* OK IMAP4rev1 ready\r\n")
    tag = conn.append("INBOX", b"abc")
    after = conn.capability()
    conn.data_to_send()
    conn.receive_data(f"{tag} NO [LIMIT] too big\r\n".encode())
    assert conn.data_to_send() == f"{after} CAPABILITY\r\n".encode()


def test_authenticate_plain_with_and_without_sasl_ir():
    conn = connection()
    conn.authenticate_plain("mafudge@syr.edu", "maillab")
    assert conn.data_to_send() == b"A0001 AUTHENTICATE PLAIN AG1hZnVkZ2VAc3lyLmVkdQBtYWlsbGFi\r\n"
    assert conn.transcript()[-1] == ("client", "A0001 AUTHENTICATE PLAIN ***")
    plain = connection(b"* OK IMAP4rev1 ready\r\n")
    plain.authenticate_plain("mafudge@syr.edu", "maillab")
    assert plain.data_to_send() == b"A0001 AUTHENTICATE PLAIN\r\n"
    plain.receive_data(b"+ \r\n")
    assert plain.data_to_send() == b"AG1hZnVkZ2VAc3lyLmVkdQBtYWlsbGFi\r\n"
    assert all("AG1h" not in text for _, text in plain.transcript())


def test_idle_and_done():
    conn = connection()
    tag = conn.idle()
    conn.data_to_send()
    conn.receive_data(b"+ idling\r\n* 4 EXISTS\r\n* 1 FETCH (FLAGS (\\Seen))\r\n")
    assert conn.idling
    assert events(conn) == [Continuation("idling"), Exists(4), Fetch(1, flags=("\\Seen",))]
    conn.done()
    assert conn.data_to_send() == b"DONE\r\n"
    conn.receive_data(f"{tag} OK IDLE terminated\r\n".encode())
    assert events(conn) == [Completed(tag, "OK", None, "IDLE terminated", "IDLE")] and not conn.idling


def test_move_fallback_copies_first_and_reports_once():
    conn = connection(b"* OK [CAPABILITY IMAP4rev1 UIDPLUS] ready\r\n")
    tag = conn.uid_move("7", "Archive")
    assert conn.data_to_send() == f'{tag} UID COPY 7 "Archive"\r\n'.encode()
    conn.receive_data(f"{tag} OK [COPYUID 5 7 3] Copied\r\n".encode())
    assert events(conn) == [] and conn.data_to_send() == b"A0002 UID STORE 7 +FLAGS.SILENT (\\Deleted)\r\n"
    conn.receive_data(b"A0002 OK Stored\r\n")
    assert conn.data_to_send() == b"A0003 UID EXPUNGE 7\r\n"
    conn.receive_data(b"* 1 EXPUNGE\r\nA0003 OK Expunged\r\n")
    assert events(conn) == [Expunge(1), Completed(tag, "OK", Code("COPYUID", (5, "7", "3")), "Expunged", "MOVE")]


def test_move_fallback_stops_when_the_copy_fails():
    conn = connection(b"* OK IMAP4rev1 ready\r\n")
    tag = conn.uid_move("7", "Nowhere")
    conn.data_to_send()
    conn.receive_data(f"{tag} NO [TRYCREATE] No such mailbox\r\n".encode())
    assert events(conn) == [Completed(tag, "NO", Code("TRYCREATE"), "No such mailbox", "MOVE")]
    assert conn.data_to_send() == b""


def test_move_uses_move_when_offered_and_names_are_modified_utf7():
    conn = connection(b"* OK [CAPABILITY IMAP4rev1 MOVE] ready\r\n")
    conn.uid_move("3:5", "Entwürfe")
    conn.status("日本語")
    assert conn.data_to_send() == (b'A0001 UID MOVE 3:5 "Entw&APw-rfe"\r\n'
                                   b'A0002 STATUS "&ZeVnLIqe-" (MESSAGES UNSEEN UIDNEXT)\r\n')


def test_starttls_drops_what_came_before_tls_and_forgets_capabilities():
    conn = connection()
    tag = conn.starttls()
    conn.data_to_send()
    conn.receive_data(f"{tag} OK Begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n".encode())
    assert events(conn) == [Completed(tag, "OK", None, "Begin TLS", "STARTTLS"), StartTls()]
    conn.receive_data(b"* 9 EXISTS\r\n")
    conn.capability()
    assert conn.data_to_send() == b""                  # nothing goes before the handshake
    conn.tls_started()
    assert conn.capabilities == frozenset() and events(conn) == []
    assert conn.data_to_send() == b"A0002 CAPABILITY\r\n"
    assert any("discarded" in text for _, text in conn.transcript())


def test_bye_then_eof_says_why():
    conn = connection()
    conn.receive_data(b"* BYE Autologout; idle for too long\r\n")
    conn.receive_data(b"")
    assert events(conn) == [Untagged("BYE", None, "Autologout; idle for too long"),
                            Closed("the server said BYE: Autologout; idle for too long")]


@pytest.mark.parametrize("data, why", [
    (b"garbage\r\n", "expected an atom"),
    (b"A1 OK hello\r\n", "greeting"),
    (GREETING + b"A0042 OK what?\r\n", "not in flight"),
    (GREETING + b"* 1 FETCH (UID x)\r\n", "number expected"),
    (GREETING + b"* 1 FETCH (UID)\r\n", "without its value"),
    (GREETING + b'* 1 FETCH (ENVELOPE ("d" "s"))\r\n', "ENVELOPE of 2"),
    (GREETING + b"* 1 FETCH (UID 1\r\n", "closing parenthesis"),
    (GREETING + b'* LIST () "/ INBOX\r\n', "closing quote"),
    (GREETING + b"+ hello\r\n", "nobody asked"),
    (GREETING + b"* 1 FETCH (BODY[] {99999999999}\r\n", "literal of"),
    (GREETING + b"* OK " + b"x" * (imap_wire.MAX_LINE + 1), "without CRLF"),
])
def test_bad_input_ends_the_connection_cleanly(data, why):
    conn = ImapClientConnection()
    for i in range(0, len(data), 4096):
        conn.receive_data(data[i:i + 4096])
    evs = events(conn)
    assert isinstance(evs[-1], Closed) and why in evs[-1].reason and conn.closed
    conn.receive_data(b"* 1 EXISTS\r\n")                  # nothing more is parsed
    assert events(conn) == []


def test_random_bytes_never_raise():
    import random
    rng = random.Random(7)
    alphabet = b'* OK NO ()[]{}"\\~+0123456789 FETCH UID BODY[] NIL\r\n'
    for _ in range(300):
        conn = connection()
        conn.uid_fetch("1", "UID")
        conn.receive_data(bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 200))))
        conn.receive_data(b"")
        evs = events(conn)
        assert isinstance(evs[-1], Closed)


def test_callers_bugs_are_value_errors():
    conn = connection()
    with pytest.raises(ValueError):
        conn.uid_fetch("1 OR 2", "UID")
    with pytest.raises(ValueError):
        conn.uid_store("1", "+FLAGS", ["a b"])
    with pytest.raises(ValueError):
        conn.login("a\r\nb", "x")
    with pytest.raises(ValueError):
        conn.uid_search("ALL\r\nA1 LOGOUT")
