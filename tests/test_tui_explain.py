"""The explain data: reply codes, enhanced codes, commands and AUTH decoding, without Textual."""

from __future__ import annotations

import base64
import subprocess
import sys

from maillab.tui.explain import Explainer, explain_command, explain_enhanced, explain_reply


def texts(notes) -> list[str]:
    return [str(n) for n in notes]


def test_the_modules_the_panels_build_on_import_without_textual():
    code = ("import sys, maillab.tui.explain, maillab.tui.sessions, maillab.tui.journey, "
            "maillab.tui.metrics, maillab.tui.fmt; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_course_replies_are_explained_with_their_rfc_section():
    assert texts(explain_reply("354 End data with <CR><LF>.<CR><LF>")) == [
        '354: start mail input: send the message, end it with a line holding only "." (RFC 5321 §4.1.1.4)']
    assert texts(explain_reply("250 2.1.5 Ok")) == [
        "250: requested action okay, completed (RFC 5321 §4.2.2)",
        "2.1.5: success, destination address valid (RFC 3463 §3.2)"]
    notes = texts(explain_reply("550 5.1.1 <nobody@syr.edu>: Recipient address rejected"))
    assert notes[0].startswith("550: mailbox unavailable") and "RFC 5321 §4.2.2" in notes[0]
    assert notes[1] == "5.1.1: permanent failure, bad destination mailbox address (no such user) (RFC 3463 §3.2)"
    assert texts(explain_reply("554 5.7.1 <x@gmail.com>: Relay access denied"))[1] == \
        "5.7.1: permanent failure, delivery not authorized, message refused (RFC 3463 §3.8)"
    assert texts(explain_reply("421 4.4.2 smtp1.syr.edu Error: timeout exceeded"))[1] == \
        "4.4.2: persistent transient failure, bad connection (RFC 3463 §3.5)"
    assert "220: service ready" in texts(explain_reply("220 smtp1.syr.edu ESMTP maillab"))[0]


def test_unknown_codes_fall_back_to_their_class_and_garbage_gets_nothing():
    assert texts(explain_reply("299 whatever")) == ["299: success (RFC 5321 §4.2.1)"]
    assert explain_enhanced("5.9.9") is None
    assert texts([explain_enhanced("4.7.99")]) == [
        "4.7.99: persistent transient failure, security or policy (detail 99) (RFC 3463 §3.8)"]
    assert explain_reply("hello there") == []
    assert explain_reply("") == []


def test_ehlo_keywords_and_multiline_replies():
    assert texts(explain_reply("250-PIPELINING")) == [
        "PIPELINING: the client may send several commands without waiting (RFC 2920)"]
    assert texts(explain_reply("250 SMTPUTF8")) == ["SMTPUTF8: addresses and headers may be UTF-8 (RFC 6531)"]
    assert any("more lines of this reply follow" in n for n in texts(explain_reply("214-Commands:")))


def test_commands_in_any_case_and_the_typed_forms():
    assert str(explain_command("mail from: santa@northpole.org")).startswith("MAIL: starts a transaction")
    assert str(explain_command("RCPT TO:<mafudge@syr.edu>")) == \
        "RCPT: one envelope recipient; repeat it for each one (RFC 5321 §4.1.1.3)"
    assert str(explain_command("helo northpole.org")).endswith("(RFC 5321 §4.1.1.1)")
    assert str(explain_command(".")) == ".: end of the message: a line holding only a dot (RFC 5321 §4.1.1.4)"
    assert explain_command("FROBNICATE") is None and explain_command("   ") is None
    assert str(explain_command("RETR 1", "pop3")) == "RETR: download one message (RFC 1939 §5)"
    assert str(explain_command("a1 UID FETCH 1:* FLAGS", "imap")).startswith("FETCH: reads parts")


def test_pop3_and_imap_status_lines():
    assert texts(explain_reply("+OK maildrop has 2 messages", "pop3")) == ["+OK: the command succeeded (RFC 1939 §3)"]
    assert texts(explain_reply("-ERR no such message", "pop3")) == ["-ERR: the command failed (RFC 1939 §3)"]
    assert texts(explain_reply("a1 NO [AUTHENTICATIONFAILED] bad", "imap")) == [
        "NO: the tagged command failed (RFC 9051 §7.1)"]


def test_auth_plain_is_decoded_with_a_warning_in_the_clear():
    x = Explainer("submission")
    blob = base64.b64encode(b"\0santa@northpole.org\0maillab").decode()
    notes = x.feed("client", f"AUTH PLAIN {blob}")
    assert notes[0].text.startswith("AUTH: log in")
    assert "user 'santa@northpole.org', password 'maillab'" in notes[1].text
    assert notes[2].warning and "in the clear" in notes[2].text
    assert texts(x.feed("server", "235 2.7.0 Authentication successful"))[0].startswith("235: authentication succeeded")


def test_auth_plain_without_initial_response_and_auth_login_step_by_step():
    x = Explainer("submission")
    x.feed("client", "AUTH PLAIN")
    x.feed("server", "334 ")
    notes = x.feed("client", base64.b64encode(b"\0bob@luxsci.net\0secret").decode())
    assert "user 'bob@luxsci.net', password 'secret'" in notes[0].text and notes[1].warning

    x = Explainer("submission")
    x.feed("client", "AUTH LOGIN")
    assert any("'Username:'" in n.text for n in x.feed("server", "334 VXNlcm5hbWU6"))
    assert x.feed("client", base64.b64encode(b"santa@northpole.org").decode())[0].text == \
        "base64 of the user name: 'santa@northpole.org'"
    assert any("'Password:'" in n.text for n in x.feed("server", "334 UGFzc3dvcmQ6"))
    notes = x.feed("client", base64.b64encode(b"maillab").decode())
    assert notes[0].text == "base64 of the password: 'maillab'" and notes[1].warning
    x.feed("server", "235 2.7.0 Authentication successful")
    # aiosmtpd's prompts are "User Name\0" and "Password\0": a client line after them is still decoded
    x.feed("client", "AUTH LOGIN")
    x.feed("server", "334 " + base64.b64encode(b"User Name\0").decode())
    assert x.feed("client", base64.b64encode(b"bob").decode())[0].text == "base64 of the user name: 'bob'"
    # the exchange is over: the next line is a command again
    assert x.feed("server", "235 2.7.0 Authentication successful")
    assert x.feed("client", "MAIL FROM:<santa@northpole.org>")[0].text.startswith("MAIL:")


def test_scram_is_not_mistaken_for_plain():
    x = Explainer("submission")
    assert "only a proof" in x.feed("client", "AUTH SCRAM-SHA-256")[0].text
    x.feed("server", "334 ")
    client_first = base64.b64encode(b"n,,n=mafudge@syr.edu,r=abc").decode()
    assert not any("PLAIN" in n.text or n.warning for n in x.feed("client", client_first))


def test_a_refused_auth_does_not_swallow_the_next_command():
    x = Explainer("smtp")
    x.feed("client", "AUTH LOGIN")
    x.feed("server", "503 5.5.1 Error: authentication not enabled")
    assert x.feed("client", "QUIT")[0].text.startswith("QUIT:")


def test_after_starttls_the_password_did_not_cross_in_the_clear():
    x = Explainer("submission")
    x.feed("client", "STARTTLS")
    assert any("encrypted" in n.text for n in x.feed("server", "220 2.0.0 Ready to start TLS"))
    notes = x.feed("client", "AUTH PLAIN " + base64.b64encode(b"\0santa@northpole.org\0maillab").decode())
    assert not any(n.warning for n in notes) and "inside TLS" in notes[-1].text
    assert Explainer("pop3s").tls and not Explainer("pop3").tls


def test_pop3_pass_and_imap_login_warn():
    assert Explainer("pop3").feed("client", "PASS maillab")[-1].warning
    assert Explainer("imap").feed("client", 'a1 LOGIN mafudge@syr.edu "maillab"')[-1].warning


def test_the_classes_cite_rfc_3463_section_3_1_to_3_8():
    assert explain_enhanced("2.0.0").ref == "RFC 3463 §3.1"
    assert explain_enhanced("2.1.5").ref == "RFC 3463 §3.2"
    assert explain_enhanced("5.5.1").ref == "RFC 3463 §3.6"
    assert explain_enhanced("5.7.1").ref == "RFC 3463 §3.8"


def test_pop3_pass_and_imap_login_are_not_called_base64():
    pop = Explainer("pop3").feed("client", "PASS maillab")[-1]
    imap = Explainer("imap").feed("client", 'a1 LOGIN mafudge@syr.edu "maillab"')[-1]
    assert pop.ref == "RFC 1939 §7" and "base64" not in pop.text and "plain text" in pop.text
    assert imap.ref == "RFC 9051 §6.2.3" and "base64" not in imap.text and "LOGINDISABLED" in imap.text


def test_queued_as_teaches_that_the_server_now_holds_the_message():
    texts_ = texts(explain_reply("250 2.0.0 Ok: queued as 4Fx2Q"))
    assert any("now on disk" in t and "RFC 5321 §6.1" in t for t in texts_)


def test_the_message_after_354_is_explained_as_a_message_not_as_commands():
    e = Explainer("smtp")
    e.feed("client", "DATA")
    assert texts(e.feed("server", "354 End data with <CR><LF>.<CR><LF>"))[0].startswith("354: start mail input")
    said = [texts(e.feed(d, t)) for d, t in [
        ("client", "From: Santa <santa@northpole.org>"), ("client", "Subject: You are on the naughty list"),
        ("client", "X-Mailer: telnet"), ("client", "\tfolded"), ("client", "QUIT"), ("client", ""),
        ("client", "DATA"), ("client", "Subject: not a header now"), ("client", "..leading dot"),
        ("client", "."), ("client", "QUIT")]]
    assert said[0] == ["From: the author, as mail clients show it; not the envelope sender of MAIL FROM "
                       "(RFC 5322 §3.6.2)"]
    assert said[1] == ["Subject: the topic (RFC 5322 §3.6.5)"] and said[2] == []
    assert said[3] == ["starts with white space: it continues the header field above (folding) (RFC 5322 §2.2.3)"]
    assert said[4] == [] and said[6] == [] and said[7] == []            # typed in the message: no commands
    assert said[5] == ["a blank line: the header section ends here, the body follows (RFC 5322 §2.1)"]
    assert said[8][0].startswith("a doubled dot") and "RFC 5321 §4.5.2" in said[8][0]
    assert said[9] == ['.: end of the message: a line holding only a dot (RFC 5321 §4.1.1.4)']
    assert said[10][0].startswith("QUIT: asks the server to close")


def test_after_lines_left_out_of_a_message_no_header_is_guessed():
    e = Explainer("smtp")
    e.feed("server", "354 go ahead")
    e.feed("client", "Subject: hi")
    e.feed("note", "… 40 lines (2000 octets) not shown …")
    assert e.feed("client", "Subject: in the body, perhaps") == []
    assert e.feed("client", "") == []
    assert texts(e.feed("client", "..x"))[0].startswith("a doubled dot")
    e.feed("client", ".")
    assert texts(e.feed("client", "RSET"))[0].startswith("RSET: aborts")


def test_tls_replies_say_what_to_do_and_where_it_is_defined():
    go_ahead = texts(explain_reply("220 2.0.0 Ready to start TLS"))
    assert go_ahead[-1].startswith("STARTTLS's go-ahead: the TLS handshake starts now") and \
        go_ahead[-1].endswith("(RFC 3207 §4.2)")
    first = texts(explain_reply("530 5.7.0 Must issue a STARTTLS command first"))
    assert first[-1].startswith("no login before TLS here") and first[-1].endswith("then AUTH (RFC 3207 §4)")
    assert not any("STARTTLS" in n for n in texts(explain_reply("530 5.7.0 Authentication required")))
    encryption = texts(explain_reply("538 5.7.11 Encryption required for requested authentication mechanism"))
    assert encryption[0] == "538: encryption required for this authentication mechanism (RFC 4954 §6)"
    assert "5.7.11" in encryption[1] and "only inside TLS: STARTTLS first (RFC 4954 §6)" in encryption[2]
    imap = texts(explain_reply("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready", "imap"))
    assert "STARTTLS: the connection can be upgraded to TLS (RFC 9051 §6.2.1)" in imap
    assert any(n.startswith("LOGINDISABLED: LOGIN") and n.endswith("(RFC 9051 §6.2.3)") for n in imap)
    refused = texts(explain_reply("a NO [PRIVACYREQUIRED] Login is not allowed before TLS", "imap"))
    assert refused[-1].startswith("PRIVACYREQUIRED: ") and refused[-1].endswith("(RFC 5530 §3)")
    assert texts(explain_reply("STLS", "pop3")) == ["STLS: the connection can be upgraded to TLS (RFC 2595 §4)"]
    assert texts(explain_reply("-ERR STLS is not offered by this server", "pop3")) == [
        "-ERR: the command failed (RFC 1939 §3)"]
    assert texts(explain_reply("-ERR [AUTH] Plaintext login is not allowed", "pop3"))[-1].endswith("(RFC 3206 §4)")
    assert texts([explain_command("STLS", "pop3")]) == ["STLS: upgrade this connection to TLS (RFC 2595 §4)"]


def test_a_starttls_that_is_not_offered_says_why_mta_sts_and_dane_exist():
    from maillab.smtp.transcript import STRIPPED_NOTE
    e = Explainer("smtp")
    stripped = texts(e.feed("note", STRIPPED_NOTE))
    assert len(stripped) == 1 and "MTA-STS (RFC 8461) and DANE (RFC 7672)" in stripped[0]
    assert e.feed("client", "STARTTLS")
    notes = e.feed("server", "502 5.5.1 Error: command not implemented")
    assert notes[-1].warning and "a sender whose TLS is only opportunistic (may) goes on in plaintext" in str(notes[-1])
    assert not any(n.warning for n in Explainer("smtp").feed("server", "502 5.5.1 Error: EXPN is not implemented"))
