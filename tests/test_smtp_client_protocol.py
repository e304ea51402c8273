"""The sans-IO SMTP client (maillab.smtp.client_protocol) on scripted server bytes, no sockets."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maillab.base.sansio import NEED_DATA, Closed, StartTls
from maillab.smtp.client_protocol import ClientConnection, Credentials, Envelope, Rcpt, xtext

MESSAGE = b"Subject: hi\r\n\r\nHello\r\n"
BOB, ANN, CAT = "bob@luxsci.net", "ann@luxsci.net", "cat@luxsci.net"

GREETING = b"220 mx1.luxsci.net ESMTP\r\n"
EHLO_OK = b"250-mx1.luxsci.net\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
OK, QUEUED, BYE = b"250 2.1.0 Ok\r\n", b"250 2.0.0 Ok: queued as 4Fx2Q\r\n", b"221 2.0.0 Bye\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"


def ehlo(*keywords: str) -> bytes:
    lines = ["mx1.luxsci.net", *keywords]
    return b"".join(f"250{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode() for i, line in enumerate(lines))


def connection(recipients: tuple[str | Rcpt, ...] = (BOB,), message: bytes = MESSAGE,
               sender: str = "mafudge@syr.edu", ret: str = "", envid: str = "", **kw: Any) -> ClientConnection:
    rcpts = tuple(r if isinstance(r, Rcpt) else Rcpt(r) for r in recipients)
    return ClientConnection("smtp1.syr.edu", Envelope(sender, rcpts, ret, envid), message, **kw)


def drive(conn: ClientConnection, *pieces: bytes, eof: bool = True) -> bytes:
    """Feed `pieces` one by one (and the end of the stream), doing TLS when asked; all bytes sent."""
    out = bytearray(conn.data_to_send())
    for piece in (*pieces, b"") if eof else pieces:
        conn.receive_data(piece)
        while isinstance(conn.next_event(), StartTls):
            conn.tls_started()
        out += conn.data_to_send()
    return bytes(out)


def commands(sent: bytes) -> list[str]:
    return [line.decode() for line in sent.split(b"\r\n") if line][:]


def outcome(conn: ClientConnection) -> tuple:
    r = conn.result
    return (r.error, r.temporary, r.peer_queue_id, sorted((k, str(v)) for k, v in r.rcpt_replies.items()),
            sorted(r.rcpt_stage.items()), r.extensions, r.tls, r.authenticated, conn.next_event())


def test_a_whole_transaction_one_command_at_a_time():
    conn = connection()
    sent = drive(conn, GREETING, EHLO_OK, OK, b"250 2.1.5 Ok\r\n", GO_AHEAD, QUEUED, BYE)
    assert sent == (b"EHLO smtp1.syr.edu\r\nMAIL FROM:<mafudge@syr.edu> SIZE=22\r\nRCPT TO:<bob@luxsci.net>\r\n"
                    b"DATA\r\n" + MESSAGE + b".\r\nQUIT\r\n")
    result = conn.result
    assert result.accepted == [BOB] and result.kind(BOB) == "accepted" and not result.error
    assert result.rcpt_stage == {BOB: "END-OF-MESSAGE"} and result.peer_queue_id == "4Fx2Q"
    assert conn.next_event() == Closed("QUIT")
    said = conn.transcript()
    assert said[0] == ("server", "220 mx1.luxsci.net ESMTP")
    assert ("client", "EHLO smtp1.syr.edu") in said and ("server", "250-SIZE 10240000") in said
    at = said.index(("note", f"(message body: 3 lines, {len(MESSAGE)} bytes)"))
    assert said[at - 2:at + 3] == [("client", "DATA"), ("server", GO_AHEAD.decode().strip()), said[at],
                                   ("client", "."), ("server", "250 2.0.0 Ok: queued as 4Fx2Q")]
    assert said[-2:] == [("client", "QUIT"), ("server", "221 2.0.0 Bye")]
    assert not any("Hello" in text for _, text in said)


def test_each_command_waits_for_its_reply_without_pipelining():
    conn = connection((BOB, ANN))
    assert drive(conn, GREETING, EHLO_OK, eof=False).endswith(b"SIZE=22\r\n")
    assert drive(conn, OK, eof=False) == b"RCPT TO:<bob@luxsci.net>\r\n"
    assert drive(conn, OK, eof=False) == b"RCPT TO:<ann@luxsci.net>\r\n"
    assert drive(conn, OK, eof=False) == b"DATA\r\n"


@pytest.mark.parametrize("queued, qid", [
    (b"250 2.0.0 Ok: queued as 4XyZ12\r\n", "4XyZ12"),                     # Postfix, and the lab's own server
    (b"250 2.0.0 Ok: queued as 17A3F2B9C0D4E\r\n", "17A3F2B9C0D4E"),
    (b"250 OK\r\n", ""),
])
def test_peer_queue_id(queued: bytes, qid: str):
    conn = connection()
    drive(conn, GREETING, EHLO_OK, OK, OK, GO_AHEAD, queued, BYE)
    assert conn.result.peer_queue_id == qid and conn.result.accepted == [BOB]


@pytest.mark.parametrize("code", [b"500", b"502"])
def test_helo_when_ehlo_is_not_recognised(code: bytes):
    conn = connection()
    sent = drive(conn, GREETING, code + b" 5.5.2 Error: command not recognized\r\n", b"250 old.test\r\n",
                 OK, OK, GO_AHEAD, QUEUED, BYE)
    assert commands(sent)[:3] == ["EHLO smtp1.syr.edu", "HELO smtp1.syr.edu", "MAIL FROM:<mafudge@syr.edu>"]
    assert conn.result.accepted == [BOB] and conn.result.extensions == {}


@pytest.mark.parametrize("reply, kind", [(b"554 5.7.1 go away\r\n", "permanent"),
                                         (b"550 5.7.1 no\r\n", "permanent"),
                                         (b"421 4.3.2 busy\r\n", "temporary")])
def test_other_ehlo_refusals_end_the_session(reply: bytes, kind: str):
    conn = connection((BOB, ANN))
    sent = drive(conn, GREETING, reply, BYE)
    assert commands(sent) == ["EHLO smtp1.syr.edu", "QUIT"]
    assert conn.result.kind(BOB) == conn.result.kind(ANN) == kind
    assert conn.result.rcpt_stage == {BOB: "EHLO", ANN: "EHLO"} and not conn.result.error


@pytest.mark.parametrize("greeting, kind", [(b"554 5.7.1 no SMTP service here\r\n", "permanent"),
                                            (b"421 4.3.2 too busy\r\n", "temporary")])
def test_a_refusing_greeting_applies_to_everyone(greeting: bytes, kind: str):
    conn = connection((BOB, ANN))
    assert commands(drive(conn, greeting, BYE)) == ["QUIT"]
    assert conn.result.greeting is not None and conn.result.greeting.code == int(greeting[:3])
    assert {conn.result.kind(BOB), conn.result.kind(ANN)} == {kind}
    assert set(conn.result.rcpt_stage.values()) == {"CONNECT"}


def test_pipelining_sends_mail_and_rcpts_as_one_group_and_data_after_their_replies():
    conn = connection((BOB, ANN, CAT))
    group = drive(conn, GREETING, ehlo("PIPELINING", "SIZE 1000"), eof=False)
    assert group == (b"EHLO smtp1.syr.edu\r\nMAIL FROM:<mafudge@syr.edu> SIZE=22\r\n"
                     b"RCPT TO:<bob@luxsci.net>\r\nRCPT TO:<ann@luxsci.net>\r\nRCPT TO:<cat@luxsci.net>\r\n")
    assert drive(conn, OK, b"250 2.1.5 Ok\r\n" * 2, eof=False) == b""   # no DATA before every RCPT reply
    assert drive(conn, b"550 5.1.1 <cat@luxsci.net>: User unknown\r\n", eof=False) == b"DATA\r\n"
    drive(conn, GO_AHEAD, QUEUED, BYE)
    result = conn.result
    assert result.accepted == [BOB, ANN] and result.kind(CAT) == "permanent"
    assert result.rcpt_stage == {CAT: "RCPT TO", BOB: "END-OF-MESSAGE", ANN: "END-OF-MESSAGE"}


def test_per_recipient_results_pipelined():
    conn = connection((BOB, ANN, CAT))
    sent = drive(conn, GREETING + ehlo("PIPELINING") + OK + b"550 5.1.1 no such user\r\n"
                 + b"452 4.2.2 mailbox full\r\n" + OK + GO_AHEAD + QUEUED + BYE)
    # every reply came in one chunk: DATA still went out once, after the group
    assert commands(sent)[1:6] == ["MAIL FROM:<mafudge@syr.edu>", f"RCPT TO:<{BOB}>", f"RCPT TO:<{ANN}>",
                                   f"RCPT TO:<{CAT}>", "DATA"] and commands(sent).count("DATA") == 1
    r = conn.result
    assert (r.kind(BOB), r.kind(ANN), r.kind(CAT)) == ("permanent", "temporary", "accepted")
    assert str(r.rcpt_replies[ANN]) == "452 4.2.2 mailbox full"


def test_pipelined_mail_refusal_decides_everyone_and_the_rcpt_replies_do_not():
    conn = connection((BOB, ANN))
    sent = drive(conn, GREETING, ehlo("PIPELINING"), b"451 4.3.0 try again later\r\n",
                 b"503 5.5.1 need MAIL\r\n", b"503 5.5.1 need MAIL\r\n", BYE)
    assert "DATA" not in commands(sent) and commands(sent)[-1] == "QUIT"
    assert {str(r) for r in conn.result.rcpt_replies.values()} == {"451 4.3.0 try again later"}
    assert set(conn.result.rcpt_stage.values()) == {"MAIL FROM"} and not conn.result.error


def test_no_data_when_every_recipient_is_refused():
    conn = connection((BOB,))
    sent = drive(conn, GREETING, EHLO_OK, OK, b"550 5.1.1 no\r\n", BYE)
    assert commands(sent)[-1] == "QUIT" and "DATA" not in commands(sent)
    assert conn.result.kind(BOB) == "permanent"


def test_end_of_data_refusal_keeps_rcpt_refusals():
    conn = connection((BOB, ANN))
    drive(conn, GREETING, EHLO_OK, OK, b"550 5.1.1 no such user\r\n", OK, GO_AHEAD,
          b"554 5.7.1 looks like spam\r\n", BYE)
    assert str(conn.result.rcpt_replies[BOB]) == "550 5.1.1 no such user"
    assert str(conn.result.rcpt_replies[ANN]) == "554 5.7.1 looks like spam"
    assert conn.result.rcpt_stage == {BOB: "RCPT TO", ANN: "END-OF-MESSAGE"}


def test_421_in_the_middle_ends_the_session_for_everyone_undecided():
    conn = connection((BOB, ANN))
    sent = drive(conn, GREETING, EHLO_OK, OK, b"550 5.1.1 no\r\n", b"421 4.4.2 shutting down\r\n")
    assert commands(sent)[-1] == "QUIT"
    assert conn.result.kind(BOB) == "permanent" and conn.result.kind(ANN) == "temporary"
    assert conn.result.rcpt_stage[ANN] == "RCPT TO" and not conn.result.error


def test_size_declared_and_a_message_over_the_limit_is_not_sent():
    conn = connection((BOB, ANN), message=b"x" * 100)
    sent = drive(conn, GREETING, ehlo("SIZE 50"), BYE)
    assert commands(sent) == ["EHLO smtp1.syr.edu", "QUIT"]
    for rcpt in (BOB, ANN):
        reply = conn.result.rcpt_replies[rcpt]
        assert reply.code == 552 and reply.enhanced == "5.3.4" and "limit of 50" in reply.text
    assert not conn.result.error
    assert ("note", "Message size 102 exceeds fixed limit of 50 bytes of the server: not sent") in conn.transcript()


def test_size_counts_the_message_after_crlf_normalisation_without_the_stuffing():
    conn = connection(message=b".a\n.b\rc")            # ".a\r\n.b\r\nc\r\n": 11 octets, 13 stuffed
    sent = drive(conn, GREETING, ehlo("SIZE 0"), OK, OK, GO_AHEAD, QUEUED, BYE)
    assert "MAIL FROM:<mafudge@syr.edu> SIZE=11" in commands(sent)
    assert b"DATA\r\n..a\r\n..b\r\nc\r\n.\r\n" in sent


@pytest.mark.parametrize("body, wire", [
    (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    (b".", b"..\r\n.\r\n"),
    (b"a\nb\n.\n", b"a\r\nb\r\n..\r\n.\r\n"),         # bare LF: CRLF (RFC 5321 §2.3.8)
    (b"a\r.\rb", b"a\r\n..\r\nb\r\n.\r\n"),             # bare CR too: no smuggled end of data
    (b"", b".\r\n"),
])
def test_dot_stuffing_and_line_endings(body: bytes, wire: bytes):
    conn = connection(message=body)
    sent = drive(conn, GREETING, ehlo("8BITMIME"), OK, OK, GO_AHEAD, QUEUED, BYE)
    assert sent.split(b"DATA\r\n", 1)[1] == wire + b"QUIT\r\n"


def test_8bitmime_when_offered():
    conn = connection(message="Subject: café\r\n\r\nà bientôt\r\n".encode())
    sent = drive(conn, GREETING, EHLO_OK, OK, OK, GO_AHEAD, QUEUED, BYE)
    assert commands(sent)[1].endswith(" BODY=8BITMIME") and conn.result.accepted == [BOB]


def test_8bit_message_to_a_server_without_8bitmime_is_returned():
    conn = connection(message="Subject: café\r\n\r\nx\r\n".encode())
    sent = drive(conn, GREETING, ehlo("SIZE 1000"), BYE)
    assert commands(sent) == ["EHLO smtp1.syr.edu", "QUIT"]
    reply = conn.result.rcpt_replies[BOB]
    assert reply.code == 554 and reply.enhanced == "5.6.3" and "8BITMIME" in reply.text


def test_smtputf8_when_offered():
    conn = connection(("jörg@luxsci.net",), sender="mafudge@syr.edu")
    sent = drive(conn, GREETING, ehlo("8BITMIME", "SMTPUTF8"), OK, OK, GO_AHEAD, QUEUED, BYE)
    assert commands(sent)[1] == "MAIL FROM:<mafudge@syr.edu> SMTPUTF8"
    assert "RCPT TO:<jörg@luxsci.net>".encode() in sent


def test_utf8_address_to_a_server_without_smtputf8_fails_permanently_with_5_6_7():
    conn = connection((BOB,), sender="jörg@syr.edu")
    sent = drive(conn, GREETING, EHLO_OK, BYE)
    assert commands(sent) == ["EHLO smtp1.syr.edu", "QUIT"]
    reply = conn.result.rcpt_replies[BOB]
    assert reply.code == 553 and reply.enhanced == "5.6.7" and "SMTPUTF8" in reply.text
    assert conn.result.kind(BOB) == "permanent" and conn.result.rcpt_stage[BOB] == "MAIL FROM"


def test_dsn_parameters_when_the_server_offers_dsn():
    rcpts = (Rcpt(BOB, ("SUCCESS", "DELAY"), "rfc822;bob+x=y@luxsci.net"), Rcpt(ANN, ("NEVER",)), Rcpt(CAT))
    conn = connection(rcpts, ret="HDRS", envid="QQ 3+1")
    sent = commands(drive(conn, GREETING, ehlo("DSN", "PIPELINING"), OK, OK, OK, OK, GO_AHEAD, QUEUED, BYE))
    assert sent[1:5] == ["MAIL FROM:<mafudge@syr.edu> RET=HDRS ENVID=QQ+203+2B1",
                         "RCPT TO:<bob@luxsci.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bx+3Dy@luxsci.net",
                         "RCPT TO:<ann@luxsci.net> NOTIFY=NEVER", "RCPT TO:<cat@luxsci.net>"]


def test_no_dsn_parameters_when_the_server_does_not_offer_dsn():
    conn = connection((Rcpt(BOB, ("SUCCESS",), "rfc822;bob@luxsci.net"),), ret="FULL", envid="E1")
    sent = commands(drive(conn, GREETING, ehlo("PIPELINING"), OK, OK, GO_AHEAD, QUEUED, BYE))
    assert sent[1:3] == ["MAIL FROM:<mafudge@syr.edu>", "RCPT TO:<bob@luxsci.net>"]


def test_xtext():
    assert xtext("a+b=c d\x7f") == "a+2Bb+3Dc+20d+7F" and xtext("jö") == "j+C3+B6"


def test_auth_plain_with_an_initial_response_and_no_secret_in_the_transcript():
    conn = connection(credentials=Credentials("mafudge@syr.edu", "maillab"))
    sent = drive(conn, GREETING, ehlo("AUTH LOGIN PLAIN"), b"235 2.7.0 Authentication successful\r\n",
                 OK, OK, GO_AHEAD, QUEUED, BYE)
    auth = commands(sent)[1]
    assert auth.startswith("AUTH PLAIN ")
    assert base64.b64decode(auth.split()[2]) == b"\0mafudge@syr.edu\0maillab"
    assert conn.result.authenticated and conn.result.accepted == [BOB]
    said = conn.transcript()
    assert ("client", "AUTH PLAIN ***") in said and not any(auth.split()[2] in t for _, t in said)


def test_auth_login_when_plain_is_not_offered():
    conn = connection(credentials=Credentials("bob", "s3cret"))
    sent = drive(conn, GREETING, ehlo("AUTH LOGIN"), b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n",
                 b"235 2.7.0 Ok\r\n", OK, OK, GO_AHEAD, QUEUED, BYE)
    assert commands(sent)[1:5] == ["AUTH LOGIN", base64.b64encode(b"bob").decode(),
                                   base64.b64encode(b"s3cret").decode(), "MAIL FROM:<mafudge@syr.edu>"]
    assert [t for d, t in conn.transcript() if d == "client"][1:4] == ["AUTH LOGIN", "***", "***"]


@pytest.mark.parametrize("reply, kind", [(b"535 5.7.8 Authentication credentials invalid\r\n", "permanent"),
                                         (b"454 4.7.0 Temporary authentication failure\r\n", "temporary")])
def test_failed_auth(reply: bytes, kind: str):
    conn = connection((BOB, ANN), credentials=Credentials("bob", "wrong"))
    sent = drive(conn, GREETING, ehlo("AUTH PLAIN"), reply, BYE)
    assert commands(sent)[-1] == "QUIT" and not any(c.startswith("MAIL") for c in commands(sent))
    assert {conn.result.kind(BOB), conn.result.kind(ANN)} == {kind} and not conn.result.authenticated
    assert set(conn.result.rcpt_stage.values()) == {"AUTH"}


def test_credentials_and_no_usable_mechanism():
    conn = connection(credentials=Credentials("bob", "x"))
    assert commands(drive(conn, GREETING, ehlo("AUTH CRAM-MD5"), BYE)) == ["EHLO smtp1.syr.edu", "QUIT"]
    reply = conn.result.rcpt_replies[BOB]
    assert reply.enhanced == "5.7.4" and "CRAM-MD5" in reply.text


def test_starttls_seam_discards_what_came_before_tls_and_what_it_knew():
    conn = connection(mode="starttls")
    assert drive(conn, GREETING, ehlo("STARTTLS", "SIZE 10", "PIPELINING"), eof=False).endswith(b"STARTTLS\r\n")
    # a 220 with an injected reply in the same chunk (a man in the middle's plaintext)
    conn.receive_data(b"220 2.0.0 Ready to start TLS\r\n250 2.1.0 injected\r\n")
    assert conn.next_event() == StartTls() and conn.data_to_send() == b""
    conn.receive_data(b"250 2.1.5 more injected\r\n")            # still before the handshake
    assert conn.next_event() is NEED_DATA and conn.data_to_send() == b""
    conn.tls_started()
    assert conn.data_to_send() == b"EHLO smtp1.syr.edu\r\n"
    assert conn.result.tls and conn.result.extensions == {}
    # after TLS the server offers no SIZE limit and no PIPELINING: the old offer is forgotten
    sent = drive(conn, ehlo("8BITMIME"), OK, OK, GO_AHEAD, QUEUED, BYE)
    assert commands(sent)[:2] == ["MAIL FROM:<mafudge@syr.edu>", "RCPT TO:<bob@luxsci.net>"]
    assert conn.result.accepted == [BOB] and not conn.result.error
    notes = [t for d, t in conn.transcript() if d == "note"]
    assert any("discarded" in n for n in notes[:2]) and sum("discarded" in n for n in notes) == 2


def test_starttls_required_but_not_offered():
    conn = connection(mode="starttls")
    sent = drive(conn, GREETING, EHLO_OK, BYE)
    assert commands(sent) == ["EHLO smtp1.syr.edu", "QUIT"]
    reply = conn.result.rcpt_replies[BOB]
    assert (reply.code, reply.enhanced, conn.result.rcpt_stage[BOB]) == (421, "4.7.4", "STARTTLS")
    assert "TLS is required, but was not offered by host" in reply.text


def test_starttls_refused():
    conn = connection(mode="starttls")
    drive(conn, GREETING, ehlo("STARTTLS"), b"454 4.7.0 TLS not available\r\n", BYE)
    assert conn.result.kind(BOB) == "temporary" and conn.result.rcpt_stage[BOB] == "STARTTLS"


def test_opportunistic_tls_upgrades_when_offered():
    conn = connection(mode="may")
    assert drive(conn, GREETING, ehlo("STARTTLS"), eof=False).endswith(b"STARTTLS\r\n")
    conn.receive_data(b"220 2.0.0 Ready to start TLS\r\n")
    assert conn.next_event() == StartTls()
    conn.tls_started()
    sent = drive(conn, EHLO_OK, OK, OK, GO_AHEAD, QUEUED, BYE)
    assert commands(sent)[0] == "EHLO smtp1.syr.edu" and conn.result.tls and conn.result.accepted == [BOB]


@pytest.mark.parametrize("offer, refusal", [((), b""), (("STARTTLS",), b"454 4.7.0 TLS not available\r\n")])
def test_opportunistic_tls_goes_on_in_plaintext_when_not_offered_or_refused(offer, refusal):
    """Postfix's `may`: no STARTTLS in EHLO (a stripping attacker's doing, say), or a refusal of
    it, and the mail still goes, in plaintext, with a note saying so."""
    conn = connection(mode="may")
    sent = drive(conn, GREETING, ehlo(*offer) if offer else EHLO_OK, *([refusal] if refusal else []),
                 OK, OK, GO_AHEAD, QUEUED, BYE)
    assert any(c.startswith("MAIL FROM:<mafudge@syr.edu>") for c in commands(sent)) and "DATA" in commands(sent)
    assert conn.result.accepted == [BOB] and not conn.result.tls
    assert any("plaintext" in t for d, t in conn.transcript() if d == "note")


def test_implicit_tls_sends_no_starttls():
    conn = connection(mode="tls")
    sent = drive(conn, GREETING, ehlo("STARTTLS"), OK, OK, GO_AHEAD, QUEUED, BYE)
    assert "STARTTLS" not in commands(sent) and conn.result.tls and conn.result.accepted == [BOB]


def test_tls_started_without_being_asked_is_our_bug():
    with pytest.raises(RuntimeError):
        connection().tls_started()


@pytest.mark.parametrize("server, error", [
    (b"SSH-2.0-OpenSSH_9.6\r\n", "protocol error after CONNECT: malformed reply line"),
    (GREETING + b"250-a\r\n251 b\r\n", "protocol error after EHLO: reply code changed from 250 to 251"),
    (GREETING + EHLO_OK + b"354 go on\r\n", "protocol error after MAIL FROM: unexpected reply 354 go on"),
    (GREETING + b"199 what\r\n", "protocol error after EHLO: unexpected reply 199 what"),
    (GREETING + EHLO_OK + OK * 3 + b"250 2.0.0 Ok\r\n", "protocol error after DATA: unexpected reply"),
    (GREETING + b"2" * 5000, "protocol error after EHLO: reply line longer than 4096 octets"),
    (GREETING + EHLO_OK + OK, "lost connection after RCPT TO"),
    (b"", "lost connection after CONNECT"),
])
def test_garbage_and_ends_are_clean_temporary_errors(server: bytes, error: str):
    conn = connection((BOB, ANN))
    drive(conn, server)
    assert conn.result.error.startswith(error) and conn.result.temporary
    assert conn.next_event() == Closed(conn.result.error)
    assert conn.result.rcpt_replies == {}        # undecided: to be retried


def test_anything_after_quit_is_fine():
    conn = connection()
    drive(conn, GREETING, EHLO_OK, OK, OK, GO_AHEAD, QUEUED, b"garbage\r\n")
    assert conn.result.accepted == [BOB] and not conn.result.error and conn.next_event() == Closed("QUIT")


def test_time_outs():
    conn = connection()
    drive(conn, GREETING, EHLO_OK, OK, OK, GO_AHEAD, eof=False)
    conn.timed_out()
    assert conn.result.error == "timeout after END-OF-MESSAGE" and conn.result.rcpt_replies == {}
    settled = connection()
    drive(settled, GREETING, EHLO_OK, OK, OK, GO_AHEAD, QUEUED, eof=False)
    assert settled.settled
    settled.timed_out()
    assert not settled.result.error and settled.next_event() == Closed("QUIT")


def test_connection_lost_names_the_reason():
    conn = connection()
    drive(conn, GREETING, eof=False)
    conn.connection_lost("Connection reset by peer")
    assert conn.result.error == "lost connection after EHLO (Connection reset by peer)"


@pytest.mark.parametrize("bad", [{"helo": "a\r\nDATA"}, {"rcpt": "b@c\nRSET"}, {"ret": "ALL"},
                                 {"notify": ("ALWAYS",)}])
def test_bad_arguments_are_our_bug(bad: dict):
    with pytest.raises(ValueError):
        ClientConnection("x", Envelope("a@b", ()), MESSAGE)
    with pytest.raises(ValueError):
        rcpt = Rcpt(bad.get("rcpt", BOB), bad.get("notify", ()))
        ClientConnection(bad.get("helo", "x"), Envelope("a@b", (rcpt,), bad.get("ret", "")), MESSAGE)


SCRIPTS = [
    GREETING + EHLO_OK + OK + OK + GO_AHEAD + QUEUED + BYE,
    GREETING + ehlo("PIPELINING", "DSN", "SMTPUTF8", "8BITMIME") + OK + b"550 5.1.1 no\r\n" + b"451 4.3.0 later\r\n"
    + OK + GO_AHEAD + QUEUED + BYE,
    GREETING + b"502 5.5.2 what\r\n" + b"250 old\r\n" + OK + OK + GO_AHEAD + b"554 5.7.1 spam\r\n" + BYE,
    GREETING + ehlo("PIPELINING") + OK + OK + b"junk\r\n",
    GREETING + ehlo("AUTH LOGIN") + b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 ok\r\n" + OK + OK + OK
    + b"421 4.3.0 bye\r\n",
]


def run_split(script: bytes, cuts: list[int], **kw: Any) -> tuple:
    conn = connection((BOB, ANN, CAT), message=b".x\r\nline\n", credentials=Credentials("u", "p"), **kw)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(script))), len(script)]
    sent = drive(conn, *(script[a:b] for a, b in zip(bounds, bounds[1:])))
    return sent, outcome(conn), conn.transcript()


@pytest.mark.parametrize("script", SCRIPTS)
def test_split_at_every_byte_gives_the_same_outcome(script: bytes):
    whole = run_split(script, [])
    assert run_split(script, list(range(len(script)))) == whole
    for at in range(1, len(script)):
        assert run_split(script, [at]) == whole, at


_LINES = st.sampled_from([GREETING, EHLO_OK, ehlo("PIPELINING", "AUTH PLAIN", "DSN", "SIZE 20", "STARTTLS"),
                          OK, QUEUED, GO_AHEAD, BYE, b"334 \r\n", b"235 ok\r\n", b"421 4.4.2 bye\r\n",
                          b"550 5.1.1 no\r\n", b"452 4.2.2 full\r\n", b"250-a\r\n", b"250 b\r\n", b"220 x\r\n",
                          b"\r\n", b"999 x\r\n", b"250", b"\n"])
_NOISE = st.one_of(_LINES, st.binary(max_size=12))
_SERVER = st.one_of(
    st.lists(_NOISE, max_size=14).map(b"".join),
    # the replies of a whole transaction (with AUTH LOGIN and three pipelined RCPTs), each line
    # kept or replaced by noise, so that deep states are reached too
    st.tuples(*(st.integers(0, 9).flatmap(lambda k, line=line: st.just(line) if k < 8 else _NOISE)
                for line in (GREETING, ehlo("PIPELINING", "AUTH LOGIN", "8BITMIME"), b"334 VXNlcm5hbWU6\r\n",
                             b"334 UGFzc3dvcmQ6\r\n", b"235 ok\r\n", OK, OK, OK, OK, GO_AHEAD, QUEUED, BYE))
              ).map(b"".join))


# bounded in CI; a longer run: MAILLAB_FUZZ_EXAMPLES=50000 python3 -m pytest -k any_server tests/test_smtp_client_protocol.py
@settings(max_examples=int(os.environ.get("MAILLAB_FUZZ_EXAMPLES", "300")), deadline=None)
@given(script=_SERVER, cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=8),
       mode=st.sampled_from(["plain", "tls"]))
def test_any_server_bytes_in_any_chunking(script: bytes, cuts: list[int], mode: str):
    sent, (error, temporary, qid, replies, stages, *_rest, closed), _ = run_split(script, cuts, mode=mode)
    assert run_split(script, [], mode=mode)[:2] == (sent, (error, temporary, qid, replies, stages, *_rest, closed))
    assert isinstance(closed, Closed)                      # the stream ended: the session is over
    assert (closed.reason == error) if error else closed.reason == "QUIT"
    assert not error or temporary
    assert {rcpt for rcpt, _ in replies} <= {BOB, ANN, CAT} and [r for r, _ in replies] == [s for s, _ in stages]
    assert all(reply[:1] in "2345" for _, reply in replies)
    assert sent.count(b"DATA\r\n") <= 1 and sent.endswith(b"\r\n") or not sent
