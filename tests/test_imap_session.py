"""IMAP session commands without sockets: greeting, CAPABILITY, LOGIN, AUTHENTICATE, LOGOUT,
ID, NAMESPACE, ENABLE, IDLE, STARTTLS's seam, and the rules of the event API."""

from __future__ import annotations

import base64

import pytest

from maillab.imap.protocol import (NEED_DATA, PAUSED, Authenticate, Closed, Execute, ImapConnection,
                                   ImapUsageError, State, StartTls)
from maillab.lab.state import StateDir
from maillab.store import MailStore

from imap_support import PASSWORD, USER, Client, msg, session
from sasl_support import ScramAuth, scram_dialogue


@pytest.fixture
def store(tmp_path) -> MailStore:
    return MailStore(StateDir(tmp_path / "state"))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_greeting_carries_the_capabilities(store):
    c = Client(store)
    assert c.greeting == (b"* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN AUTH=LOGIN "
                          b"AUTH=SCRAM-SHA-256] "
                          b"smtp1.syr.edu IMAP4rev1 maillab ready\r\n")
    assert c.cmd("a CAPABILITY") == (b"* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN "
                                     b"AUTH=LOGIN AUTH=SCRAM-SHA-256\r\na OK CAPABILITY completed\r\n")


def test_login_then_the_full_capability_list(store):
    c = Client(store)
    out = c.cmd(f"a1 LOGIN {USER} {PASSWORD}")
    assert out == (b"a1 OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS "
                   b"MOVE SPECIAL-USE CHILDREN CONDSTORE APPENDLIMIT=67108864] Logged in\r\n")
    assert c.conn.state is State.AUTHENTICATED and c.conn.login == USER
    assert c.events == [Authenticate(USER, PASSWORD, "LOGIN")]


def test_login_with_quoted_strings_and_literals(store):
    c = Client(store)
    assert c.cmd('a LOGIN "mafudge" {7}') == b"+ Ready for literal data\r\n"
    assert c.send(b"maillab\r\n").startswith(b"a OK [CAPABILITY")
    assert c.conn.login == USER


def test_bad_password_then_too_many_failures_close(store):
    c = Client(store)
    assert c.cmd(f"a LOGIN {USER} wrong") == b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    assert c.conn.state is State.NOT_AUTHENTICATED
    c.cmd(f"b LOGIN {USER} wrong")
    out = c.cmd(f"c LOGIN {USER} wrong")
    assert out.endswith(b"* BYE Too many failed logins\r\n")
    assert c.closed == Closed("Too many failed logins")


def test_login_password_is_hidden_from_the_transcript(store):
    c = Client(store)
    c.conn.transcript()
    c.cmd(f'a LOGIN {USER} "se cret"')
    lines = c.conn.transcript()
    assert ("client", f"a LOGIN {USER} ***") in lines
    assert not any("se cret" in text for _, text in lines)


def test_authenticate_plain_with_a_continuation(store):
    c = Client(store)
    assert c.cmd("a AUTHENTICATE PLAIN") == b"+ \r\n"
    out = c.cmd(b64(f"\0{USER}\0{PASSWORD}"))
    assert out.startswith(b"a OK [CAPABILITY IMAP4rev1")
    assert c.events == [Authenticate(USER, PASSWORD, "PLAIN")]
    assert any(text.startswith("(SASL response") for _, text in c.conn.transcript())


def test_authenticate_plain_initial_response_sasl_ir(store):
    c = Client(store)
    response = b64(USER + chr(0) + USER + chr(0) + PASSWORD)
    assert c.cmd(f"a AUTHENTICATE PLAIN {response}").startswith(b"a OK")
    lines = c.conn.transcript()
    assert ("client", "a AUTHENTICATE PLAIN ***") in lines
    assert not any(response in text for _, text in lines)


def test_authenticate_login_mechanism(store):
    c = Client(store)
    assert c.cmd("a AUTHENTICATE LOGIN") == b"+ VXNlcm5hbWU6\r\n"
    assert c.cmd(b64("mafudge")) == b"+ UGFzc3dvcmQ6\r\n"
    assert c.cmd(b64(PASSWORD)).startswith(b"a OK")
    assert c.events == [Authenticate("mafudge", PASSWORD, "LOGIN")]


@pytest.mark.parametrize("initial", [True, False])
def test_authenticate_scram_sha_256_server_final_then_ok(store, initial):
    c = Client(store)
    auth = ScramAuth(USER, PASSWORD)
    seen = scram_dialogue(lambda line: c.cmd(line).decode().splitlines()[-1], "a AUTHENTICATE SCRAM-SHA-256", "+ ",
                          auth, initial)
    assert auth.verified and seen[-1].startswith("a OK [CAPABILITY") and c.conn.login == USER
    assert c.events[-1] == Authenticate(USER, None, "SCRAM-SHA-256", proven=USER)


def test_authenticate_scram_sha_256_wrong_password_and_unknown_user_read_alike(store):
    replies = []
    for user, password in ((USER, "nope"), ("nobody@syr.edu", PASSWORD)):
        c = Client(store)
        seen = scram_dialogue(lambda line: c.cmd(line).decode().splitlines()[-1], "a AUTHENTICATE SCRAM-SHA-256",
                              "+ ", ScramAuth(user, password), True)
        replies.append(seen[-1])
    assert replies == ["a NO [AUTHENTICATIONFAILED] Authentication failed."] * 2


def test_authenticate_cancel_bad_base64_and_unknown_mechanism(store):
    c = Client(store)
    c.cmd("a AUTHENTICATE PLAIN")
    assert c.cmd("*") == b"a BAD Authentication cancelled\r\n"
    c.cmd("b AUTHENTICATE PLAIN")
    assert c.cmd("!!!") == b"b BAD Invalid base64 in SASL response\r\n"
    assert c.cmd("c AUTHENTICATE CRAM-MD5").startswith(b"c NO Unsupported authentication mechanism CRAM-MD5")
    assert c.cmd(f"d AUTHENTICATE PLAIN {b64('no-nuls-here')}").startswith(b"d NO [AUTHENTICATIONFAILED] Malformed")
    assert c.cmd(f"e AUTHENTICATE PLAIN {b64('other' + chr(0) + USER + chr(0) + PASSWORD)}") \
        .startswith(b"e NO [AUTHORIZATIONFAILED]")
    assert c.conn.state is State.NOT_AUTHENTICATED


def test_logout_says_bye_then_ok_and_closes(store):
    c = session(store)
    assert c.cmd("z LOGOUT") == b"* BYE smtp1.syr.edu IMAP4rev1 maillab logging out\r\nz OK LOGOUT completed\r\n"
    assert c.closed == Closed("Logged out") and c.conn.state is State.LOGOUT


def test_id_namespace_enable(store):
    c = Client(store)
    assert c.cmd('a ID ("name" "mutt" "version" "2.2")') == (
        b'* ID ("name" "maillab" "version" "0.1.0" "vendor" "maillab")\r\na OK ID completed\r\n')
    assert c.conn.client_id == (("name", "mutt"), ("version", "2.2"))
    assert c.cmd("b ID NIL").endswith(b"b OK ID completed\r\n")
    c.login()
    assert c.cmd("c NAMESPACE") == b'* NAMESPACE (("" ".")) NIL NIL\r\nc OK NAMESPACE completed\r\n'
    assert c.cmd("d ENABLE CONDSTORE UTF8=ACCEPT") == b"* ENABLED CONDSTORE\r\nd OK ENABLE completed\r\n"
    assert c.conn.condstore
    assert c.cmd("e ENABLE CONDSTORE") == b"* ENABLED\r\ne OK ENABLE completed\r\n"


def test_starttls_is_refused_until_tls_exists_and_the_seam_works_when_it_does(store):
    c = Client(store)
    assert c.cmd("a STARTTLS") == b"a BAD STARTTLS is not available on this server\r\n"
    t = Client(store, tls_available=True)
    assert b"STARTTLS" in t.greeting
    # a command pipelined behind STARTTLS must not survive into TLS (CVE-2011-0411 style injection)
    assert t.send(b"a STARTTLS\r\nb CAPABILITY\r\n") == b"a OK Begin TLS negotiation now\r\n"
    assert isinstance(t.events[-1], StartTls) and t.conn.tls_active
    out = t.cmd("c CAPABILITY")
    assert b"b OK" not in out and b"STARTTLS" not in out and out.endswith(b"c OK CAPABILITY completed\r\n")


def test_without_plaintext_auth_login_is_disabled_until_tls(store):
    c = Client(store, tls_available=True, plaintext_auth=False)
    assert b"STARTTLS LOGINDISABLED]" in c.greeting and b"AUTH=" not in c.greeting
    refused = b"NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"
    assert c.cmd("a LOGIN mafudge@syr.edu maillab") == b"a " + refused
    assert c.cmd("b AUTHENTICATE PLAIN " + b64("\0mafudge@syr.edu\0maillab")) == b"b " + refused
    assert not any(isinstance(e, Authenticate) for e in c.events)
    c.send(b"c STARTTLS\r\n")
    assert b"AUTH=PLAIN" in c.cmd("d CAPABILITY") and b"LOGINDISABLED" not in c.cmd("e CAPABILITY")
    assert c.cmd("f LOGIN mafudge@syr.edu maillab").startswith(b"f OK")


def test_idle_reports_new_mail_when_polled_and_ends_with_done(store):
    c = session(store)
    assert c.cmd("i IDLE") == b"+ idling\r\n"
    assert c.conn.idling
    store.deliver(USER, msg("new one"))
    c.conn.idle_poll()
    assert c.conn.data_to_send() == b"* 1 EXISTS\r\n* 1 RECENT\r\n"
    c.conn.idle_poll()
    assert c.conn.data_to_send() == b""                      # nothing twice
    assert c.cmd("DONE") == b"i OK IDLE terminated\r\n"
    assert not c.conn.idling


def test_idle_in_authenticated_state_and_a_wrong_line(store):
    c = session(store, mailbox=None)
    assert c.cmd("i IDLE") == b"+ idling\r\n"
    assert c.cmd("NOPE") == b"i BAD Expected DONE\r\n"
    assert c.cmd("n NOOP") == b"n OK NOOP completed\r\n"


def test_commands_pipelined_in_one_chunk_are_answered_in_order(store):
    store.deliver(USER, msg())
    c = Client(store)
    out = c.send(f"a LOGIN {USER} {PASSWORD}\r\nb SELECT INBOX\r\nc FETCH 1 UID\r\nd LOGOUT\r\n".encode())
    tags = [line.split(b" ")[0] for line in out.split(b"\r\n") if line and not line.startswith(b"*")]
    assert tags == [b"a", b"b", b"c", b"d"]
    assert c.closed is not None


def test_event_api_misuse_raises_usage_errors(store):
    conn = ImapConnection("smtp1.syr.edu")
    with pytest.raises(ImapUsageError):
        conn.login_ok(store.user(USER), USER)
    with pytest.raises(ImapUsageError):
        conn.execute()
    conn.receive_data(f"a LOGIN {USER} {PASSWORD}\r\nb NOOP\r\n".encode())
    assert isinstance(conn.next_event(), Authenticate)
    assert conn.next_event() is PAUSED                       # b waits until a is answered
    conn.login_ok(store.user(USER), USER)
    assert isinstance(conn.next_event(), Execute)
    assert conn.execute() is False
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    assert conn.next_event() == Closed("Connection closed")
    with pytest.raises(ImapUsageError):
        conn.receive_data(b"x")


def test_autologout_and_abort(store):
    c = session(store)
    c.conn.timed_out()
    assert c.conn.data_to_send() == b"* BYE Autologout; idle for too long\r\n"
    assert c.conn.next_event() == Closed("Autologout")
    d = Client(store)
    d.conn.abort("server stopped", "Server shutting down")
    assert d.conn.data_to_send() == b"* BYE Server shutting down\r\n"


def _announced_before_use(lines: list[str], keyword: str) -> bool:
    """True when `* FLAGS` naming `keyword` comes before the first FETCH carrying it."""
    for line in lines:
        if line.startswith("* FLAGS (") and keyword in line[9:].rstrip(")").split():
            return True
        if " FETCH (" in line and keyword in line:
            return False
    raise AssertionError(f"no FETCH carried {keyword}: {lines}")


def test_a_new_keyword_is_announced_by_flags_before_a_fetch_carries_it(store):
    """RFC 3501 §7.2.6: FLAGS (and PERMANENTFLAGS) before any FETCH with the new keyword,
    whether this session's STORE added it or another's was heard of in a FETCH."""
    store.deliver(USER, msg("one"))
    c, other = session(store), session(store)
    out = c.ok("s1 STORE 1 +FLAGS ($Mine)")
    assert _announced_before_use(out, "$Mine"), out
    assert out.index("* 1 FETCH (FLAGS ($Mine \\Recent))") > 0
    assert sum(line.startswith("* OK [PERMANENTFLAGS (") for line in out) == 1, out
    other.ok("s2 STORE 1 +FLAGS ($Theirs)")
    out = c.ok("f1 FETCH 1 (FLAGS)")
    assert _announced_before_use(out, "$Theirs"), out
    assert c.ok("n1 NOOP") == []                    # announced once, not again at the catch-up


def test_catching_up_looks_only_at_what_changed_and_still_reports_past_the_change_log(store, monkeypatch):
    """After another session's STORE, the catch-up reads the folder's change log, not every message
    (was: one Folder.get per message of the mailbox before every tagged OK); when more commits than
    the log keeps happened since, it looks at every message and reports the same."""
    from maillab.store import folder as folder_module
    for i in range(300):
        store.deliver(USER, msg(f"m{i}"))
    a, b = session(store), session(store)
    b.ok("b1 STORE 7 +FLAGS (\\Flagged)")
    looked: list[int] = []
    real_get = folder_module.Folder.get
    monkeypatch.setattr(folder_module.Folder, "get", lambda self, uid: (looked.append(uid), real_get(self, uid))[1])
    assert a.ok("a1 NOOP") == ["* 7 FETCH (UID 7 FLAGS (\\Flagged \\Recent))"]
    assert looked == [7]
    monkeypatch.setattr(folder_module.Folder, "get", real_get)
    for u in range(1, 11):
        b.ok(f"b2 STORE {u} +FLAGS (\\Answered)")
    for n in range(folder_module.CHANGE_LOG):                # then more commits than the log remembers
        b.ok(f"b3 STORE 300 {'+-'[n % 2]}FLAGS (\\Seen)")
    b.ok("b4 STORE 250 +FLAGS (\\Deleted)")
    b.ok("b5 EXPUNGE")
    lines = a.ok("a2 NOOP")
    assert lines[-1] == "* 250 EXPUNGE"
    reported = {int(line.split()[1]): "\\Answered" in line for line in lines[:-1]}
    assert reported == {**{u: True for u in range(1, 11)}, 300: False}
