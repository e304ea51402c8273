"""POP3 without sockets: bytes in, events and reply bytes out (maillab.pop3.protocol).

One section per command family; the maildrop is a real MailStore in tmp_path,
answered by `Drop`, a tiny synchronous stand-in for the asyncio adapter.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maillab.base.sasl import ScramLookup
from maillab.lab.state import StateDir
from maillab.pop3.protocol import (MAX_COMMAND, NEED_DATA, PAUSED, Authenticate, Closed, Pop3Connection,
                                   Pop3UsageError, Retrieve, State, StartTls, Update, stuff, top_of,
                                   uidl_for)
from maillab.store import SEEN, MailStore
from sasl_support import ScramAuth, keys, scram_dialogue

USER = "mafudge@syr.edu"
GREETING = b"+OK smtp1.syr.edu POP3 maillab ready\r\n"
MSG1 = b"From: santa@northpole.org\nSubject: one\n\nline one\n.hidden dot\n..two dots\nlast\n"
MSG2 = b"From: bob@luxsci.net\nSubject: two\n\nbody of two\n"
MSG3 = b"Subject: three\n\n" + b"".join(b"line %d\n" % i for i in range(1, 11))


def plain(authcid: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


class Drop:
    """Answers the protocol's events the way the server does, synchronously, on a real store."""

    def __init__(self, store: MailStore, passwords: dict[str, str] | None = None) -> None:
        self.store = store
        self.passwords = passwords if passwords is not None else {USER: "maillab"}
        self.conn = Pop3Connection("smtp1.syr.edu")
        self.conn.greet()
        self.events: list[object] = []
        self.folder = None
        self.lock = None

    def send(self, data: bytes) -> bytes:
        """Feed bytes; answer every event; return the reply bytes (the greeting on the first call)."""
        self.conn.receive_data(data)
        self.run()
        return self.conn.data_to_send()

    def run(self) -> None:
        conn = self.conn
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA or isinstance(ev, Closed):
                if isinstance(ev, Closed) and (not self.events or self.events[-1] != ev):
                    self.events.append(ev)
                    if self.lock is not None:
                        self.lock.release()
                return
            assert ev is not PAUSED
            self.events.append(ev)
            if isinstance(ev, ScramLookup):
                conn.scram_credentials(keys(self.passwords.get(ev.login, ""), ev.login if ev.login in self.passwords
                                            else None))
            elif isinstance(ev, Authenticate):
                if not ev.proven and (ev.password is None or self.passwords.get(ev.login) != ev.password):
                    conn.login_failed("AUTH", "invalid login or password")
                    continue
                self.lock = self.store.lock_maildrop(ev.login)
                self.folder = self.store.user(ev.login).folder("INBOX")
                self.folder.refresh()
                conn.login_ok(self.folder.messages(), ev.login)
            elif isinstance(ev, Retrieve):
                conn.message(self.folder.read(ev.uid, crlf=True))
            elif isinstance(ev, Update):
                if ev.seen:
                    self.folder.store(ev.seen, [SEEN], "add")
                self.folder.remove(ev.delete)
                conn.update_done()

    def login(self) -> bytes:
        return self.send(b"USER mafudge@syr.edu\r\nPASS maillab\r\n")

    def say(self, line: str) -> str:
        """One command line; the last line of the reply."""
        return self.send(line.encode() + b"\r\n").decode().splitlines()[-1]


@pytest.fixture
def store(tmp_path) -> MailStore:
    s = MailStore(StateDir(tmp_path / "state"))
    for data in (MSG1, MSG2, MSG3):
        s.deliver(USER, data)
    return s


@pytest.fixture
def drop(store) -> Drop:
    d = Drop(store)
    assert d.conn.data_to_send() == GREETING
    return d


@pytest.fixture
def session(drop) -> Drop:
    """Logged in, in TRANSACTION, with three messages."""
    assert drop.login().endswith(b"+OK maildrop has 3 messages (%d octets)\r\n" % total(drop))
    return drop


def total(d: Drop) -> int:
    return sum(len(m.replace(b"\n", b"\r\n")) for m in (MSG1, MSG2, MSG3))


def crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


# ---- the greeting and CAPA (RFC 1939 §4, RFC 2449 §5) ------------------------------------

def test_greeting_names_the_host(drop):
    assert drop.conn.state is State.AUTHORIZATION
    assert drop.conn.transcript() == [("server", GREETING.decode().strip())]


def test_capa_in_authorization_offers_user_and_sasl_plain_not_stls(drop):
    out = drop.send(b"CAPA\r\n")
    assert out.startswith(b"+OK")
    caps = out.split(b"\r\n")[1:-2]
    assert out.endswith(b"\r\n.\r\n")
    for cap in (b"USER", b"SASL PLAIN LOGIN SCRAM-SHA-256", b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE",
                b"PIPELINING"):
        assert cap in caps
    assert b"STLS" not in caps


def test_capa_in_transaction_drops_login_capabilities(session):
    caps = session.send(b"CAPA\r\n").split(b"\r\n")[1:-2]
    assert b"USER" not in caps and not any(c.startswith(b"SASL") for c in caps)
    assert b"TOP" in caps and b"UIDL" in caps


def test_stls_is_a_seam_not_offered_yet(drop):
    assert drop.send(b"STLS\r\n").startswith(b"-ERR STLS is not offered")
    conn = Pop3Connection("h", tls_available=True)
    conn.receive_data(b"STLS\r\nUSER injected\r\n")
    assert isinstance(conn.next_event(), StartTls)
    assert conn.data_to_send() == b"+OK begin TLS negotiation\r\n"
    assert conn.next_event() is PAUSED
    conn.tls_started()
    assert conn.next_event() is NEED_DATA          # the plaintext after STLS was thrown away
    assert conn.data_to_send() == b""


# ---- USER / PASS (RFC 1939 §7) ---------------------------------------------------------------

def test_user_pass_logs_in(drop):
    out = drop.send(b"USER mafudge@syr.edu\r\n")
    assert out == b"+OK send PASS\r\n"
    out = drop.send(b"PASS maillab\r\n")
    assert out == b"+OK maildrop has 3 messages (%d octets)\r\n" % total(drop)
    assert drop.conn.state is State.TRANSACTION
    assert drop.conn.login == USER
    assert drop.events[0] == Authenticate(USER, "maillab", "USER")


def test_pass_keeps_spaces_in_the_password(store):
    d = Drop(store, {USER: " two words "})
    assert d.send(b"USER mafudge@syr.edu\r\nPASS  two words \r\n").endswith(b"+OK maildrop has 3 messages (%d octets)\r\n"
                                                                         % total(d))


def test_bad_password_is_auth_error_and_stays_in_authorization(drop):
    out = drop.send(b"USER mafudge@syr.edu\r\nPASS wrong\r\n")
    assert out == b"+OK send PASS\r\n-ERR [AUTH] invalid login or password\r\n"
    assert drop.conn.state is State.AUTHORIZATION
    assert drop.send(b"PASS maillab\r\n").startswith(b"-ERR send USER first")


def test_three_failed_logins_close_the_session(drop):
    out = drop.send(b"USER a@syr.edu\r\nPASS x\r\nUSER a@syr.edu\r\nPASS y\r\nUSER a@syr.edu\r\nPASS z\r\nNOOP\r\n")
    assert out.count(b"-ERR [AUTH]") == 3
    assert out.endswith(b"-ERR [AUTH] invalid login or password; 3 failed logins, closing the connection\r\n")
    assert drop.conn.state is State.CLOSED
    assert isinstance(drop.events[-1], Closed)


def test_maildrop_in_use_is_reported_with_in_use_code():
    conn = Pop3Connection("h")
    conn.receive_data(b"USER a\r\nPASS b\r\n")
    assert isinstance(conn.next_event(), Authenticate)
    conn.login_failed("IN-USE", "maildrop already locked")
    assert conn.data_to_send() == b"+OK send PASS\r\n-ERR [IN-USE] maildrop already locked\r\n"
    assert conn.state is State.AUTHORIZATION


def test_pipelined_commands_wait_for_the_login_answer():
    conn = Pop3Connection("h")
    conn.receive_data(b"USER a\r\nPASS b\r\nSTAT\r\nQUIT\r\n")
    ev = conn.next_event()
    assert isinstance(ev, Authenticate)
    assert conn.next_event() is PAUSED and conn.next_event() is PAUSED
    assert conn.data_to_send() == b"+OK send PASS\r\n"
    conn.login_ok([])
    assert conn.next_event() == Update((), ())
    conn.update_done()
    assert isinstance(conn.next_event(), Closed)
    assert conn.data_to_send() == (b"+OK maildrop has 0 messages (0 octets)\r\n+OK 0 0\r\n"
                                   b"+OK h POP3 maillab signing off (maildrop empty)\r\n")


def test_answering_without_an_event_is_our_bug():
    conn = Pop3Connection("h")
    with pytest.raises(Pop3UsageError):
        conn.login_ok([])
    with pytest.raises(Pop3UsageError):
        conn.message(b"x")


def test_quit_in_authorization_closes_without_update(drop):
    assert drop.send(b"QUIT\r\n") == b"+OK smtp1.syr.edu POP3 maillab signing off\r\n"
    assert drop.events == [Closed("QUIT")]


# ---- AUTH PLAIN (RFC 5034, RFC 4616) -----------------------------------------------------------

def test_auth_plain_with_initial_response(drop):
    out = drop.send(f"AUTH PLAIN {plain(USER, 'maillab')}\r\n".encode())
    assert out.startswith(b"+OK maildrop has 3 messages")
    assert drop.events[0] == Authenticate(USER, "maillab", "PLAIN")


def test_auth_plain_with_continuation(drop):
    assert drop.send(b"AUTH PLAIN\r\n") == b"+ \r\n"
    assert drop.conn.state is State.SASL
    out = drop.send(f"{plain(USER, 'maillab', authzid=USER)}\r\n".encode())
    assert out.startswith(b"+OK maildrop has 3 messages")
    assert drop.conn.state is State.TRANSACTION


def test_auth_plain_bad_password_and_cancel_and_garbage(drop):
    assert drop.send(f"AUTH PLAIN {plain(USER, 'nope')}\r\n".encode()) == \
        b"-ERR [AUTH] invalid login or password\r\n"
    assert drop.send(b"AUTH PLAIN\r\n*\r\n") == b"+ \r\n-ERR authentication cancelled\r\n"
    assert drop.send(b"AUTH PLAIN\r\n!!notbase64!!\r\n") == b"+ \r\n-ERR invalid base64 in SASL response\r\n"
    assert drop.conn.state is State.AUTHORIZATION
    assert drop.send(b"AUTH CRAM-MD5\r\n").startswith(b"-ERR unsupported SASL mechanism CRAM-MD5")
    # a malformed PLAIN message is a failed login too: with the bad password above, the third closes
    assert drop.send(b"AUTH PLAIN " + base64.b64encode(b"no-nuls") + b"\r\n").startswith(b"-ERR [AUTH] malformed")
    assert drop.send(f"AUTH PLAIN {plain(USER, 'maillab', authzid='santa@northpole.org')}\r\n".encode()) \
        .startswith(b"-ERR [AUTH] authorization identity")
    assert drop.events[-1] == Closed("too many failed logins")


@pytest.mark.parametrize("initial", [True, False])
def test_auth_scram_sha_256(drop, initial):
    auth = ScramAuth(USER, "maillab")
    seen = scram_dialogue(drop.say, "AUTH SCRAM-SHA-256", "+ ", auth, initial)
    assert auth.verified and seen[-1].startswith("+OK maildrop has") and drop.conn.state is State.TRANSACTION


def test_auth_scram_sha_256_wrong_proof_and_cancel(drop):
    assert scram_dialogue(drop.say, "AUTH SCRAM-SHA-256", "+ ", ScramAuth(USER, "nope"), True)[-1] == \
        "-ERR [AUTH] invalid login or password"
    assert drop.send(b"AUTH SCRAM-SHA-256\r\n*\r\n") == b"+ \r\n-ERR authentication cancelled\r\n"
    assert drop.conn.state is State.AUTHORIZATION


def test_auth_without_mechanism_lists_the_mechanisms(drop):
    assert drop.send(b"AUTH\r\n") == \
        b"+OK supported SASL mechanisms follow\r\nPLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\n.\r\n"


# ---- STAT, LIST, UIDL (RFC 1939 §5, §7) ---------------------------------------------------------

def test_stat_list_uidl(session, store):
    sizes = [len(crlf(m)) for m in (MSG1, MSG2, MSG3)]
    assert session.send(b"STAT\r\n") == b"+OK 3 %d\r\n" % sum(sizes)
    assert session.send(b"LIST\r\n") == (b"+OK 3 messages (%d octets)\r\n" % sum(sizes)
                                         + b"".join(b"%d %d\r\n" % (i, s) for i, s in enumerate(sizes, 1))
                                         + b".\r\n")
    assert session.send(b"LIST 2\r\n") == b"+OK 2 %d\r\n" % sizes[1]
    keys = [m.key.split(",")[0] for m in store.user(USER).folder("INBOX").messages()]  # unique names
    assert session.send(b"UIDL\r\n") == (b"+OK 3 unique-ids follow\r\n"
                                         + b"".join(b"%d %s\r\n" % (i, k.encode()) for i, k in enumerate(keys, 1))
                                         + b".\r\n")
    assert session.send(b"UIDL 3\r\n") == b"+OK 3 %s\r\n" % keys[2].encode()


@pytest.mark.parametrize("line, reply", [
    (b"LIST 0", b"-ERR no such message (this maildrop has messages 1 to 3)"),
    (b"LIST 4", b"-ERR no such message (this maildrop has messages 1 to 3)"),
    (b"RETR 99999999999999999999999999", b"-ERR no such message (this maildrop has messages 1 to 3)"),
    (b"UIDL 4294967296", b"-ERR no such message (this maildrop has messages 1 to 3)"),
    (b"LIST -1", b"-ERR invalid message number -1"),
    (b"LIST one", b"-ERR invalid message number one"),
    (b"LIST \xd9\xa1", b"-ERR invalid message number \xd9\xa1"),          # ARABIC-INDIC DIGIT ONE
    (b"LIST 1 2", b"-ERR syntax: LIST [message-number]"),
    (b"STAT 1", b"-ERR syntax: STAT"),
    (b"RETR", b"-ERR syntax: RETR message-number"),
    (b"TOP 1", b"-ERR syntax: TOP message-number lines"),
    (b"TOP 1 x", b"-ERR invalid number of lines x"),
    (b"TOP 1 99999999999999999999", b"-ERR number of lines too large"),
    (b"DELE", b"-ERR syntax: DELE message-number"),
])
def test_bad_message_numbers(session, line, reply):
    assert session.send(line + b"\r\n") == reply + b"\r\n"
    assert session.conn.state is State.TRANSACTION


def test_empty_maildrop(store, tmp_path):
    d = Drop(MailStore(StateDir(tmp_path / "other")))
    d.conn.data_to_send()
    assert d.login().endswith(b"+OK maildrop has 0 messages (0 octets)\r\n")
    assert d.send(b"STAT\r\nLIST\r\nUIDL\r\nLIST 1\r\n") == (
        b"+OK 0 0\r\n+OK 0 messages (0 octets)\r\n.\r\n+OK 0 unique-ids follow\r\n.\r\n"
        b"-ERR no such message (the maildrop is empty)\r\n")


# ---- RETR and TOP: byte-stuffing (RFC 1939 §3, §7) ------------------------------------------------

def test_retr_stuffs_dots_and_terminates(session):
    out = session.send(b"RETR 1\r\n")
    body = crlf(MSG1)
    assert out == (b"+OK %d octets\r\n" % len(body)
                   + body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    assert b"\r\n..hidden dot\r\n...two dots\r\n" in out
    assert session.events[-1] == Retrieve(1, session.folder.messages()[0].uid, None)


def test_retr_transcript_summarises_the_body(session):
    session.conn.transcript()
    session.send(b"RETR 3\r\n")
    assert session.conn.transcript() == [
        ("client", "RETR 3"), ("server", f"+OK {len(crlf(MSG3))} octets"),
        ("note", f"(12 lines, {len(crlf(MSG3))} bytes)"), ("server", ".")]


def test_top_sends_header_blank_line_and_n_body_lines(session):
    assert session.send(b"TOP 3 0\r\n") == b"+OK top of message follows\r\nSubject: three\r\n\r\n.\r\n"
    assert session.send(b"TOP 3 2\r\n") == (b"+OK top of message follows\r\nSubject: three\r\n\r\n"
                                            b"line 1\r\nline 2\r\n.\r\n")
    whole = session.send(b"TOP 3 4000000000\r\n")
    assert whole == b"+OK top of message follows\r\n" + crlf(MSG3) + b".\r\n"
    assert session.send(b"TOP 1 2\r\n").endswith(b"\r\n\r\nline one\r\n..hidden dot\r\n.\r\n")


def test_stuff_and_top_of_edge_cases():
    assert stuff(b"") == b".\r\n"
    assert stuff(b".starts") == b"..starts\r\n.\r\n"
    assert stuff(b"a\r\n.\r\nb") == b"a\r\n..\r\nb\r\n.\r\n"
    assert stuff(b"bare\rcr\r\n") == b"bare\rcr\r\n.\r\n"
    assert top_of(b"Subject: no body\r\n", 5) == b"Subject: no body\r\n"
    assert top_of(b"\r\nbody1\r\nbody2\r\n", 1) == b"\r\nbody1\r\n"
    assert top_of(b"H: 1\r\n\r\nno final newline", 3) == b"H: 1\r\n\r\nno final newline"


def test_uidl_is_the_unique_name_or_a_digest():
    unique = "1795432932.M979210P29185Q1R35f6980e.smtp1.syr.edu"
    assert uidl_for(unique + ",S=15,W=18") == unique
    # the MDA's delivery tag makes the key longer than 70: the UIDL stays the unique name
    assert uidl_for(unique + ",S=15,W=18,I=0B3XK9PQ2M7T-5f3a9c1e2b7d4a60") == unique
    for odd in ("x" * 71, "has space", "ünïcode", ""):
        u = uidl_for(odd)
        assert 1 <= len(u) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in u)
        assert u == uidl_for(odd)


# ---- DELE, RSET, QUIT: deletions only in UPDATE (RFC 1939 §6) -------------------------------------

def test_dele_hides_the_message_but_the_store_keeps_it_until_quit(session, store):
    folder = store.user(USER).folder("INBOX")
    assert session.send(b"DELE 2\r\n") == b"+OK message 2 deleted\r\n"
    assert session.send(b"DELE 2\r\n") == b"-ERR message 2 already deleted\r\n"
    for cmd in (b"RETR 2", b"LIST 2", b"UIDL 2", b"TOP 2 0"):
        assert session.send(cmd + b"\r\n") == b"-ERR message 2 already deleted\r\n"
    sizes = [len(crlf(m)) for m in (MSG1, MSG2, MSG3)]
    assert session.send(b"STAT\r\n") == b"+OK 2 %d\r\n" % (sizes[0] + sizes[2])
    listing = session.send(b"LIST\r\n")
    assert listing == b"+OK 2 messages (%d octets)\r\n1 %d\r\n3 %d\r\n.\r\n" % (sizes[0] + sizes[2], sizes[0], sizes[2])
    assert folder.exists == 3                   # nothing removed yet
    uids = [m.uid for m in folder.messages()]
    session.send(b"RETR 1\r\n")
    out = session.send(b"QUIT\r\n")
    assert out == b"+OK smtp1.syr.edu POP3 maillab signing off (2 messages left)\r\n"
    assert session.events[-2] == Update((uids[1],), (uids[0],))
    assert isinstance(session.events[-1], Closed)
    folder.refresh()
    assert [m.uid for m in folder.messages()] == [uids[0], uids[2]]
    assert SEEN in folder.get(uids[0]).flags and SEEN not in folder.get(uids[2]).flags
    assert not store.maildrop_locked(USER)


def test_rset_unmarks(session, store):
    session.send(b"DELE 1\r\nDELE 3\r\n")
    assert session.send(b"RSET\r\n") == b"+OK maildrop has 3 messages (%d octets)\r\n" % total(session)
    assert session.send(b"STAT\r\n") == b"+OK 3 %d\r\n" % total(session)
    assert session.send(b"QUIT\r\n").startswith(b"+OK")
    assert session.events[-2] == Update((), ())
    assert store.user(USER).folder("INBOX").exists == 3


def test_eof_without_quit_deletes_nothing(session, store):
    session.send(b"DELE 1\r\nDELE 2\r\nDELE 3\r\n")
    session.conn.receive_data(b"")
    session.run()
    assert session.events[-1] == Closed("client closed the connection")
    assert not any(isinstance(e, Update) for e in session.events)
    assert store.user(USER).folder("INBOX").exists == 3


def test_timeout_closes_silently_without_update(session, store):
    session.send(b"DELE 1\r\n")
    session.conn.timed_out()
    session.run()
    assert session.conn.data_to_send() == b""     # RFC 1939 §3: no response
    assert session.events[-1] == Closed("timeout")
    assert store.user(USER).folder("INBOX").exists == 3


def test_later_deliveries_wait_for_the_next_session(session, store):
    store.deliver(USER, b"Subject: four\n\nlate\n")
    assert session.send(b"STAT\r\n").startswith(b"+OK 3 ")
    assert session.send(b"DELE 1\r\nQUIT\r\n").endswith(b"(2 messages left)\r\n")
    d = Drop(store)
    assert d.login().endswith(b"+OK maildrop has 3 messages (%d octets)\r\n"
                              % (total(d) - len(crlf(MSG1)) + len(crlf(b"Subject: four\n\nlate\n"))))


def test_noop(session):
    assert session.send(b"NOOP\r\n") == b"+OK\r\n"
    assert session.send(b"NOOP x\r\n") == b"-ERR syntax: NOOP\r\n"


# ---- commands in the wrong state and bad input --------------------------------------------------

@pytest.mark.parametrize("cmd", [b"STAT", b"LIST", b"RETR 1", b"DELE 1", b"NOOP", b"RSET", b"TOP 1 1", b"UIDL"])
def test_transaction_commands_before_login(drop, cmd):
    name = cmd.split()[0]
    assert drop.send(cmd + b"\r\n") == b"-ERR %s is not valid in the AUTHORIZATION state (RFC 1939 \xc2\xa73)\r\n" % name


@pytest.mark.parametrize("cmd", [b"USER x", b"PASS y", b"AUTH PLAIN"])
def test_authorization_commands_after_login(session, cmd):
    name = cmd.split()[0]
    assert session.send(cmd + b"\r\n") == b"-ERR %s is not valid in the TRANSACTION state (RFC 1939 \xc2\xa73)\r\n" % name


def test_bare_lf_and_lower_case_commands_work(drop):
    out = drop.send(b"user mafudge@syr.edu\npass maillab\nstat\n")
    assert out.endswith(b"+OK 3 %d\r\n" % total(drop))


def test_unknown_empty_nul_and_bad_utf8(drop):
    assert drop.send(b"HELO there\r\n") == b"-ERR unknown command HELO\r\n"
    assert drop.send(b"\r\n") == b"-ERR empty command\r\n"
    assert drop.send(b"USER a\x00b\r\n") == b"-ERR NUL bytes are not allowed in commands\r\n"
    assert drop.send(b"USER \xff\xfe\r\n") == b"-ERR invalid UTF-8 in command\r\n"
    assert drop.conn.transcript()[-2:] == [("client", "USER \ufffd\ufffd"), ("server", "-ERR invalid UTF-8 in command")]
    assert drop.login().endswith(b"+OK maildrop has 3 messages (%d octets)\r\n" % total(drop))


def test_overlong_lines_get_one_error_and_the_session_goes_on(drop):
    ok = b"USER " + b"a" * (MAX_COMMAND - 7) + b"\r\n"           # exactly 255 octets
    assert len(ok) == MAX_COMMAND
    assert drop.send(ok) == b"+OK send PASS\r\n"
    long_line = b"USER " + b"a" * (MAX_COMMAND - 6) + b"\r\n"    # 256 octets
    assert drop.send(long_line).startswith(b"-ERR line too long")
    # a huge line in pieces: dropped as it comes, the buffer stays small
    out = b""
    for _ in range(100):
        out += drop.send(b"x" * 10_000)
        assert len(drop.conn._in) < MAX_COMMAND
    out += drop.send(b"\r\nCAPA\r\n")
    assert out.startswith(b"-ERR line too long (RFC 2449 \xc2\xa74: at most 255 octets)\r\n+OK capability list")
    assert ("note", "(a line of 1000002 octets, dropped)") in drop.conn.transcript()


def test_consecutive_bad_commands_close_the_session(drop):
    out = drop.send(b"junk\r\n" * 9)
    assert out.count(b"-ERR unknown command JUNK") == 9 and drop.conn.state is State.AUTHORIZATION
    out = drop.send(b"junk\r\nCAPA\r\n")
    assert out == b"-ERR unknown command JUNK; 10 bad commands in a row, closing the connection\r\n"
    assert drop.events[-1] == Closed("too many bad commands")


def test_a_good_command_resets_the_bad_count(drop):
    for _ in range(2):
        drop.send(b"junk\r\n" * 9 + b"CAPA\r\n")
    assert drop.conn.state is State.AUTHORIZATION


def test_errors_not_in_a_row_still_close_before_login(drop):
    """Postfix's hard error limit: 20 errors in all, whatever comes between them."""
    out = drop.send((b"AUTH FOO\r\nCAPA\r\n") * 20)
    assert out.count(b"-ERR unsupported SASL mechanism FOO") == 20
    assert out.endswith(b"-ERR unsupported SASL mechanism FOO (try PLAIN, LOGIN, SCRAM-SHA-256); too many errors, closing the connection\r\n")
    assert drop.events[-1] == Closed("too many errors")


def test_semantic_errors_do_not_count_as_bad(session):
    session.send(b"RETR 9\r\n" * 20)
    assert session.conn.state is State.TRANSACTION


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=12))
def test_fuzz_any_bytes_get_replies_never_exceptions(chunks):
    conn = Pop3Connection("h")
    conn.greet()
    for chunk in chunks + [b""]:
        if conn.state is State.CLOSED:
            break
        conn.receive_data(chunk)
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA or isinstance(ev, Closed):
                break
            if isinstance(ev, Authenticate):
                conn.login_failed("AUTH", "no")
            else:
                raise AssertionError(f"unexpected event {ev!r}")
        assert len(conn._in) <= 400 + MAX_COMMAND
    out = conn.data_to_send()
    for line in out.split(b"\r\n")[:-1]:
        assert line.startswith((b"+OK", b"-ERR", b"+ ")) or line in (b"PLAIN", b".") or line.isupper() \
            or line.startswith((b"SASL", b"EXPIRE", b"LOGIN-DELAY", b"IMPLEMENTATION"))
