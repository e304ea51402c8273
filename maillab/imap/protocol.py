"""IMAP4rev1 without sockets: bytes in, events out, response bytes queued (RFC 3501 and extensions).

`ImapConnection` owns one session: the framer (lines and literals), the state
machine, the selected mailbox's `View`, and the responses with their
transcript.  It never touches a socket or the directory; the mail store it
reaches only inside `execute()`, which the adapter may run in a worker thread
(h11's shape, with h2's outgoing buffer):

    conn = ImapConnection("smtp1.syr.edu", tls_available=True, plaintext_auth=False)
                                              # plaintext_auth=False: LOGINDISABLED, and LOGIN and
                                              # AUTHENTICATE get NO [PRIVACYREQUIRED], until TLS
    conn.greet()
    conn.receive_data(chunk)                  # b"" = the client closed
    ev = conn.next_event()                    # NEED_DATA, PAUSED or an event:
      Authenticate(login, password, mech)  -> conn.login_ok(user_store, address) | conn.login_failed()
      ScramLookup(login)                   -> conn.scram_credentials(the directory's keys)
      Execute(command, blocking)           -> while conn.execute(): send data_to_send()
                                              (blocking: run it in a worker thread)
      StartTls()                           -> conn.tls_started()   (with tls_available: the handshake is done)
      Closed(reason)                       -> send data_to_send() and close
    conn.idle_poll()                          # in IDLE, when the store says something changed
    conn.data_to_send(); conn.transcript()    # response bytes; (direction, text) lines for the TUI

Rules of the state machine (RFC 3501 §3; everything that changes `state` is
in this file, `mailboxes.py` or `messages.py`, through `select`/`unselect`):

    NOT AUTHENTICATED --LOGIN/AUTHENTICATE, login_ok--> AUTHENTICATED
    AUTHENTICATED --SELECT/EXAMINE ok--> SELECTED --CLOSE/UNSELECT/failed SELECT--> AUTHENTICATED
    any --LOGOUT, EOF, autologout, too many bad commands, mailbox deleted--> LOGOUT

Which command is valid in which state is the table `COMMANDS`.  Invariants:
- responses go out in command order: while an event waits for its answer,
  `next_event()` returns PAUSED and frames nothing more (pipelining is safe);
- untagged updates for changes made by other sessions (EXISTS, RECENT,
  FETCH FLAGS, EXPUNGE) are sent just before a tagged response in SELECTED
  state, and in IDLE; EXPUNGE never during FETCH, STORE or SEARCH
  (RFC 3501 §7.4.1), so sequence numbers stay what the client believes;
- memory is bounded: literal sizes are checked before "+" (framing.py),
  APPEND literals are small until login, a big FETCH is produced in chunks
  (`execute()` returns True in between), and the adapter feeds input only
  after NEED_DATA;
- two kinds of error, as in h11: the peer's (a BAD or NO response;
  `max_bad_commands` BADs in a row close the session) and ours (an answer
  method called when no event asked for it raises `ImapUsageError`).
"""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Generator, Iterator, Literal

from ..base.sansio import NEED_DATA, PAUSED, PLAINTEXT_REFUSED, Authenticate, Closed, Sentinel, StartTls
from ..base.sasl import MECHANISMS, Challenge, SaslExchange, SaslFailure, ScramCredentials, ScramLookup, Step
from ..store import StoreError, UserStore
from ..store.errors import FlagError, NoSuchMailbox
from . import inline, mailboxes, messages
from .command_context import Result
from .framing import MAX_APPEND, MAX_LITERAL, FramingError, Framer, RawCommand, RawLine, tag_of
from .parser import Command, Enable, Id, Login, ParseError, parse_args, parse_head
from .parser import Authenticate as AuthenticateArgs
from .response import ImapError, Out, bad, no, string
from .view import MailboxGone, SequenceError, View

if TYPE_CHECKING:
    from ..store import Folder

IMPLEMENTATION = "maillab"
VERSION = "0.1.0"
PRE_LOGIN_LITERAL = 8 * 1024        # an APPEND literal before login: refused above this


class State(enum.Enum):
    NOT_AUTHENTICATED = "NOT AUTHENTICATED"
    AUTHENTICATED = "AUTHENTICATED"
    SELECTED = "SELECTED"
    LOGOUT = "LOGOUT"


# ---- events ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Execute:
    """A command that reads or changes the mail store: call `execute()` until it returns False,
    sending `data_to_send()` in between.  `blocking`: it may touch the disk for long (run it in a
    thread); else it is cheap and bounded (inline.py) and may run on the loop."""
    command: str
    blocking: bool


Event = Authenticate | ScramLookup | Execute | StartTls | Closed


class ImapUsageError(RuntimeError):
    """The adapter broke the protocol object's rules (our bug, not the peer's)."""


Handler = Callable[["ImapConnection", Command], "Result | Generator[None, None, Result]"]
_NO_COMPLETION = "\0"                       # handler result: the command is not complete yet


@dataclass(frozen=True, slots=True)
class _Spec:
    states: frozenset[State]
    handler: Handler
    store: bool = False                     # answered through Execute (touches the mail store)
    blocking: Callable[["ImapConnection", Command], bool] = lambda conn, cmd: True   # see inline.py


@dataclass(slots=True)
class _Sasl:
    tag: str
    exchange: SaslExchange


def _decode_b64(line: bytes) -> bytes:
    if line.strip() == b"=":
        return b""
    try:
        return binascii.a2b_base64(line.strip(), strict_mode=True)
    except binascii.Error:
        raise bad("Invalid base64 in SASL response") from None


class ImapConnection:
    def __init__(self, hostname: str, *, tls_available: bool = False, plaintext_auth: bool = True,
                 max_bad_commands: int = 20,
                 max_auth_failures: int = 3, max_append: int = MAX_APPEND,
                 max_literal: int = MAX_LITERAL) -> None:
        self.hostname = hostname
        self.tls_available = tls_available
        self.tls_active = False
        self.plaintext_auth = plaintext_auth    # False: LOGINDISABLED until STARTTLS (RFC 3501 §6.2.3)
        self.max_bad_commands = max_bad_commands
        self.max_auth_failures = max_auth_failures
        self.max_append = max_append
        self.state = State.NOT_AUTHENTICATED
        self.out = Out()
        self.framer = Framer(self.out.raw, lambda text: self.out.note("client", text),
                             max_append=min(PRE_LOGIN_LITERAL, max_literal), max_literal=max_literal)
        self.user: UserStore | None = None
        self.login: str | None = None           # the account address, once authenticated
        self.view: View | None = None
        self.condstore = False                  # RFC 7162 §3.1: CONDSTORE enabled in this session
        self.idling = False
        self.stats = {"in": 0, "fetched": 0, "deleted": 0, "expunged": 0, "appended": 0}
        self.client_id: tuple[tuple[str, str | None], ...] | None = None
        self._eof = False
        self._waiting: type | None = None
        self._closed: Closed | None = None
        self._bad = 0
        self._auth_failures = 0
        self._sasl: _Sasl | None = None
        self._auth_tag: str | None = None
        self._idle_cmd: Command | None = None
        self._job_cmd: Command | None = None
        self._job: Iterator[None] | None = None
        self._keywords_version = -1

    # ---- bytes in ------------------------------------------------------------------------

    def greet(self) -> None:
        """The greeting (RFC 3501 §7.1.1), with the capabilities (RFC 3501 §7.2.1 code)."""
        self.out.line(f"* OK [CAPABILITY {self.capabilities()}] {self.hostname} IMAP4rev1 "
                      f"{IMPLEMENTATION} ready")

    def receive_data(self, data: bytes) -> None:
        """Add received bytes; b"" means the client closed its side."""
        if self._eof:
            raise ImapUsageError("receive_data after end of stream")
        if not data:
            self._eof = True
            return
        if self.framer.unframed > 2 * self.framer.max_line + (1 << 20):
            raise ImapUsageError("input buffer overflow: feed data only after NEED_DATA")
        self.stats["in"] += len(data)
        self.framer.receive_data(data)

    def next_event(self) -> Event | Sentinel:
        """The next thing the adapter must do; simple commands are answered on the way."""
        while True:
            if self._closed is not None:
                return self._closed
            if self._waiting is not None:
                return PAUSED
            mode: Literal["command", "idle", "sasl"] = \
                "idle" if self.idling else "sasl" if self._sasl is not None else "command"
            frame = self.framer.next(mode)
            if frame is None:
                if self._eof:
                    self._close("Connection closed")
                    continue
                return NEED_DATA
            event = self._frame(frame)
            if event is not None:
                return event

    def _frame(self, frame: RawCommand | RawLine | FramingError) -> Event | None:
        if isinstance(frame, FramingError):
            if self._sasl is not None:
                self._sasl_failed(frame.text)
                return None
            if frame.no:
                self._tagged(frame.tag, "NO", frame.text, frame.code)
                return None
            return self._bad_command(frame.tag, frame.text, frame.code)
        if isinstance(frame, RawLine):
            if self.idling:
                return self._idle_line(frame.text)
            return self._sasl_line(frame.text)
        return self._command(frame)

    # ---- commands ------------------------------------------------------------------------

    def _command(self, raw: RawCommand) -> Event | None:
        try:
            cur, tag, name, uid = parse_head(raw)
        except ParseError as e:
            return self._bad_command(e.tag or tag_of(raw.lines[0]), e.text)
        spec = COMMANDS.get(name)
        if spec is None:
            return self._bad_command(tag, f"Unknown command {name[:40]}")
        if self.state not in spec.states:
            return self._bad_command(tag, _wrong_state(name, self.state))
        try:
            cmd = parse_args(cur, tag, name, uid)
        except ParseError as e:
            return self._bad_command(tag, e.text)
        self._bad = 0
        if name in ("LOGIN", "AUTHENTICATE") and not self.login_allowed:
            self._fail(cmd, no(PLAINTEXT_REFUSED, "PRIVACYREQUIRED"))      # RFC 5530 §3
            return self._closed
        if spec.store:
            self._job_cmd, self._job = cmd, None
            self._waiting = Execute
            return Execute(cmd.label, spec.blocking(self, cmd))
        try:
            result = spec.handler(self, cmd)
            if isinstance(result, Event):
                return result
            if result != _NO_COMPLETION:
                self._complete(cmd, result)  # type: ignore[arg-type]
        except (ImapError, SequenceError, MailboxGone, StoreError, OSError) as e:
            self._fail(cmd, e)
        return self._closed

    def execute(self) -> bool:
        """Run (part of) the command an `Execute` event announced; True: flush and call again."""
        if self._waiting is not Execute:
            raise ImapUsageError("no Execute event is waiting")
        cmd = self._job_cmd
        assert cmd is not None
        try:
            if self._job is None:
                result = COMMANDS[cmd.name].handler(self, cmd)
                if isinstance(result, Generator):
                    self._job = result
            if self._job is not None:
                try:
                    next(self._job)
                    return True
                except StopIteration as stop:
                    result = stop.value
            self._complete(cmd, result)  # type: ignore[arg-type]
        except (ImapError, SequenceError, MailboxGone, StoreError, OSError) as e:
            self._fail(cmd, e)
        self._job = self._job_cmd = None
        self._waiting = None
        return False

    def _fail(self, cmd: Command, e: Exception) -> None:
        """End `cmd` with the NO or BAD (or, for a vanished mailbox, the BYE) that `e` calls for."""
        self.out.end_bulk()
        self.idling = False
        if isinstance(e, MailboxGone) or (isinstance(e, NoSuchMailbox) and self.view is not None
                                          and self.view.folder.closed):
            self._mailbox_gone(cmd)
            return
        if isinstance(e, SequenceError):
            err = bad(str(e))
        elif isinstance(e, StoreError):
            err = store_error(e)
        elif isinstance(e, OSError):
            err = no(f"Server error: {e.strerror or e}", "UNAVAILABLE")
        else:
            assert isinstance(e, ImapError)
            err = e
        self._tagged(cmd.tag, err.status, err.text, err.code)

    def _complete(self, cmd: Command, result: Result) -> None:
        """Untagged updates where RFC 3501 §7.4.1 allows them, then the tagged OK."""
        self.out.end_bulk()
        if self.state is State.SELECTED:
            allow_expunge = cmd.uid or cmd.name not in ("FETCH", "STORE", "SEARCH")
            try:
                self.send_updates(allow_expunge)
            except MailboxGone:
                self._mailbox_gone(cmd)
                return
        code, text = result if isinstance(result, tuple) else ("", result or f"{cmd.label} completed")
        self._tagged(cmd.tag, "OK", text, code)

    def send_updates(self, allow_expunge: bool) -> None:
        """What other sessions changed in the selected mailbox (and new keywords: FLAGS first)."""
        assert self.view is not None
        lines = self.view.sync(allow_expunge, self.condstore)
        self.announce_keywords()
        for line in lines:
            self.out.line(line)

    def announce_keywords(self) -> None:
        """FLAGS and PERMANENTFLAGS again if a keyword was added since they were last sent.

        Call it after reading the flags about to be sent in a FETCH response, before
        sending it (RFC 3501 §7.2.6): a keyword is registered before any message
        carries it, so every keyword read before this call is announced by it.
        """
        assert self.user is not None
        if self.user.keywords.version != self._keywords_version:
            self.send_flags()

    def send_flags(self) -> None:
        """FLAGS and PERMANENTFLAGS of the selected mailbox (RFC 3501 §7.2.6, §7.1)."""
        assert self.user is not None and self.view is not None
        keywords = self.user.keywords
        self._keywords_version = keywords.version
        names = " ".join(k for k in keywords.names() if not k.startswith("$maillab-unused-"))
        base = "\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded" + (f" {names}" if names else "")
        self.out.line(f"* FLAGS ({base})")
        if self.view.readonly:
            self.out.line("* OK [PERMANENTFLAGS ()] Read-only mailbox")
        else:
            star = "" if keywords.full() else " \\*"
            self.out.line(f"* OK [PERMANENTFLAGS ({base}{star})] Flags permitted")

    def _tagged(self, tag: str | None, status: str, text: str, code: str = "") -> None:
        head = tag if tag else "*"
        self.out.line(f"{head} {status} [{code}] {text}" if code else f"{head} {status} {text}")

    def _bad_command(self, tag: str | None, text: str, code: str = "") -> Event | None:
        self._bad += 1
        if self._bad >= self.max_bad_commands:
            self._tagged(tag, "BAD", text, code)
            self.out.line("* BYE Too many invalid commands")
            self._close("Too many invalid commands")
            return self._closed
        self._tagged(tag, "BAD", text, code)
        return None

    def _mailbox_gone(self, cmd: Command) -> None:
        """The selected mailbox was deleted or renamed by someone else: RFC 3501 has no way
        back for the client, so say BYE (as Dovecot does)."""
        self.out.end_bulk()
        self.out.line("* BYE The selected mailbox was deleted or renamed by another session")
        self._tagged(cmd.tag, "NO", "Selected mailbox is gone", "NONEXISTENT")
        self._close("Selected mailbox was deleted")

    # ---- state changes ---------------------------------------------------------------------

    def select(self, folder: "Folder", readonly: bool) -> View:
        """Enter SELECTED with a new view of `folder` (mailboxes.py's SELECT and EXAMINE)."""
        self.view = View(folder, readonly)
        self.state = State.SELECTED
        return self.view

    def unselect(self) -> None:
        self.view = None
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def enable_condstore(self) -> None:
        """RFC 7162 §3.1: from now on FETCH responses and updates carry MODSEQ."""
        self.condstore = True

    def _close(self, reason: str) -> None:
        self.state = State.LOGOUT
        self._closed = Closed(reason)
        self.framer.release()                   # an APPEND literal cut short holds no budget
        self._waiting = None
        self.idling = False
        self.view = None

    def _wait(self, kind: type) -> None:
        self._waiting = kind

    def _answering(self, kind: type) -> None:
        if self._waiting is not kind:
            raise ImapUsageError(f"no {kind.__name__} event is waiting for an answer")
        self._waiting = None

    # ---- bytes out ---------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        return self.out.data_to_send()

    def transcript(self) -> list[tuple[Literal["client", "server", "note"], str]]:
        """The session's lines since the last call: client lines, server lines, notes."""
        return self.out.transcript()

    @property
    def login_allowed(self) -> bool:
        """LOGIN and AUTHENTICATE may be used now: TLS is up, or the policy allows plaintext."""
        return self.plaintext_auth or self.tls_active

    def capabilities(self) -> str:
        caps = ["IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.tls_available and not self.tls_active:
                caps.append("STARTTLS")
            caps += [f"AUTH={m}" for m in MECHANISMS] if self.login_allowed else ["LOGINDISABLED"]
        else:
            caps += ["NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "SPECIAL-USE", "CHILDREN", "CONDSTORE",
                     f"APPENDLIMIT={self.max_append}"]
        return " ".join(caps)

    # ---- answers from the adapter ------------------------------------------------------------

    def login_ok(self, user: UserStore, address: str) -> None:
        """The login is good: enter AUTHENTICATED (RFC 3501 §6.2.3) with the user's store."""
        self._answering(Authenticate)
        self.user, self.login = user, address
        self.state = State.AUTHENTICATED
        self.framer.max_append = self.max_append
        tag, self._auth_tag = self._auth_tag, None
        self._tagged(tag, "OK", "Logged in", f"CAPABILITY {self.capabilities()}")

    def login_failed(self, text: str = "Authentication failed.", code: str = "AUTHENTICATIONFAILED") -> None:
        """Bad login (`code` AUTHENTICATIONFAILED) or trouble on our side (UNAVAILABLE, RFC 5530)."""
        self._answering(Authenticate)
        tag, self._auth_tag = self._auth_tag, None
        if code == "AUTHENTICATIONFAILED":
            self._refuse_login(tag, text, code)
        else:
            self._tagged(tag, "NO", text, code)

    def scram_credentials(self, found: ScramCredentials) -> None:
        """The answer to ScramLookup: the login's stored keys (made-up ones if it has none)."""
        self._answering(ScramLookup)
        assert self._sasl is not None
        self._sasl_next(self._sasl.exchange.credentials(found))

    def _refuse_login(self, tag: str, text: str, code: str) -> None:
        """NO for a failed login (a malformed PLAIN message is one); the last one allowed says BYE."""
        self._auth_failures += 1
        self._tagged(tag, "NO", text, code)
        if self._auth_failures >= self.max_auth_failures:
            self.out.line("* BYE Too many failed logins")
            self._close("Too many failed logins")

    def tls_started(self) -> None:
        """TLS is up after STARTTLS: forget everything said before it (RFC 3501 §6.2.1)."""
        self._answering(StartTls)
        self.tls_active = True
        self.framer = Framer(self.out.raw, lambda text: self.out.note("client", text),
                             max_append=self.framer.max_append, max_literal=self.framer.max_literal)

    def idle_poll(self) -> None:
        """In IDLE (RFC 2177): report what changed since the last report (call when woken)."""
        if self.idling and self.state is State.SELECTED:
            try:
                self.send_updates(True)
            except MailboxGone:
                assert self._idle_cmd is not None
                self._mailbox_gone(self._idle_cmd)

    def timed_out(self) -> None:
        """The autologout timer expired (RFC 3501 §5.4)."""
        self.out.line("* BYE Autologout; idle for too long")
        self._close("Autologout")

    def abort(self, reason: str, text: str | None = None) -> None:
        """Close now (the server stops, say), with an optional last BYE."""
        if text:
            self.out.line(f"* BYE {text}")
        self._close(reason)

    # ---- IDLE and SASL lines -------------------------------------------------------------------

    def _idle_line(self, line: bytes) -> Event | None:
        cmd = self._idle_cmd
        assert cmd is not None
        self.idling = False
        self._idle_cmd = None
        if line.strip().upper() != b"DONE":
            self._tagged(cmd.tag, "BAD", "Expected DONE")
            return None
        self._complete(cmd, "IDLE terminated")
        return self._closed

    def _sasl_line(self, line: bytes) -> Event | None:
        sasl = self._sasl
        assert sasl is not None
        if line.strip() == b"*":
            self._sasl = None
            self._tagged(sasl.tag, "BAD", "Authentication cancelled")      # RFC 3501 §6.2.2
            return None
        try:
            data = _decode_b64(line)
        except ImapError as e:
            self._sasl_failed(e.text)
            return None
        return self._sasl_next(sasl.exchange.respond(data))

    def _sasl_failed(self, text: str) -> None:
        sasl = self._sasl
        assert sasl is not None
        self._sasl = None
        self._tagged(sasl.tag, "BAD", text)

    def _sasl_next(self, step: Step) -> Event | None:
        """What the exchange said: a "+" continuation, an event to wait on, or a failed login."""
        sasl = self._sasl
        assert sasl is not None
        if isinstance(step, Challenge):
            text = "+ " + binascii.b2a_base64(step.data, newline=False).decode()
            self.out.raw(text.encode() + b"\r\n", text)
            return None
        if isinstance(step, ScramLookup):
            self._wait(ScramLookup)
            return step
        self._sasl = None
        if isinstance(step, SaslFailure):
            self._refuse_login(sasl.tag, step.text,
                               "AUTHORIZATIONFAILED" if step.authorization else "AUTHENTICATIONFAILED")
            return None
        return self._authenticate(sasl.tag, step)

    def _authenticate(self, tag: str, event: Authenticate) -> Authenticate:
        self._auth_tag = tag
        self._wait(Authenticate)
        return event

    # ---- commands of any state and of NOT AUTHENTICATED ----------------------------------------

    def _cmd_capability(self, cmd: Command) -> Result:
        self.out.line(f"* CAPABILITY {self.capabilities()}")
        return None

    def _cmd_noop(self, cmd: Command) -> Result:
        if self.view is not None:
            self.view.folder.refresh()          # catch up with programs that write the Maildir
        return None

    def _cmd_logout(self, cmd: Command) -> Result:
        self.out.line(f"* BYE {self.hostname} IMAP4rev1 {IMPLEMENTATION} logging out")
        self._tagged(cmd.tag, "OK", "LOGOUT completed")
        self._close("Logged out")
        return _NO_COMPLETION

    def _cmd_id(self, cmd: Command) -> Result:
        """RFC 2971: remember what the client says, tell who we are."""
        args: Id = cmd.args
        self.client_id = args.params
        ours = ("name", IMPLEMENTATION, "version", VERSION, "vendor", "maillab")
        self.out.line("* ID (" + " ".join(str(string(v)) for v in ours) + ")")
        return None

    def _cmd_starttls(self, cmd: Command) -> Result | Event:
        if not self.tls_available:
            raise bad("STARTTLS is not available on this server")
        if self.tls_active:
            raise bad("TLS is already active")
        self._tagged(cmd.tag, "OK", "Begin TLS negotiation now")
        self._wait(StartTls)
        return StartTls()

    def _cmd_login(self, cmd: Command) -> Result | Event:
        args: Login = cmd.args
        return self._authenticate(cmd.tag, Authenticate(args.user, args.password, "LOGIN"))

    def _cmd_authenticate(self, cmd: Command) -> Result | Event:
        args: AuthenticateArgs = cmd.args
        if args.mechanism not in MECHANISMS:
            raise no(f"Unsupported authentication mechanism {args.mechanism[:40]} (use {', '.join(MECHANISMS)})")
        initial = _decode_b64(args.initial) if args.initial is not None else None     # SASL-IR, RFC 4959
        exchange = SaslExchange(args.mechanism)
        self._sasl = _Sasl(cmd.tag, exchange)
        event = self._sasl_next(exchange.start(initial))
        return event if event is not None else _NO_COMPLETION

    # ---- session commands of AUTHENTICATED and SELECTED -----------------------------------

    def _cmd_enable(self, cmd: Command) -> Result:
        """RFC 5161: only CONDSTORE can be enabled here; other names are ignored."""
        args: Enable = cmd.args
        enabled = []
        if "CONDSTORE" in args.names:
            if not self.condstore:
                enabled.append("CONDSTORE")
            self.enable_condstore()
        self.out.line("* ENABLED" + "".join(" " + n for n in enabled))
        return None

    def _cmd_namespace(self, cmd: Command) -> Result:
        """RFC 2342: one personal namespace, no prefix, "." as the delimiter."""
        self.out.line('* NAMESPACE (("" ".")) NIL NIL')
        return None

    def _cmd_idle(self, cmd: Command) -> Result:
        """RFC 2177: "+ idling", then updates as they happen, until DONE."""
        self.idling = True
        self._idle_cmd = cmd
        self.out.raw(b"+ idling\r\n", "+ idling")
        if self.state is State.SELECTED:
            self.send_updates(True)
        return _NO_COMPLETION

    def _cmd_unselect(self, cmd: Command) -> Result:
        """RFC 3691: leave SELECTED without expunging."""
        self.unselect()
        return None


def _wrong_state(name: str, state: State) -> str:
    if state is State.NOT_AUTHENTICATED:
        return f"{name} is not valid in the NOT AUTHENTICATED state: log in first (LOGIN or AUTHENTICATE)"
    if state is State.AUTHENTICATED and name in _SELECTED_ONLY:
        return f"{name} needs a selected mailbox: SELECT or EXAMINE one first"
    return f"{name} is not valid in the {state.value} state"


def store_error(e: StoreError) -> ImapError:
    """What the client sees for an error of the store: BAD for a flag it may not use, else NO
    with the store's RFC 5530 code (CANNOT for a bad mailbox name, NONEXISTENT, LIMIT, ...)."""
    if isinstance(e, FlagError):
        return bad(str(e))
    return no(str(e), e.code)


_ANY = frozenset(State) - {State.LOGOUT}
_NOAUTH = frozenset({State.NOT_AUTHENTICATED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
_SEL = frozenset({State.SELECTED})
_SELECTED_ONLY = {"CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE"}

# Which command is valid in which state (RFC 3501 §6; RFC 2177, 2342, 2971, 3691, 4315,
# 5161, 6851, 7162) and how it is answered.
COMMANDS: dict[str, _Spec] = {
    "CAPABILITY": _Spec(_ANY, ImapConnection._cmd_capability),
    "NOOP": _Spec(_ANY, ImapConnection._cmd_noop, store=True, blocking=inline.noop_blocking),
    "LOGOUT": _Spec(_ANY, ImapConnection._cmd_logout),
    "ID": _Spec(_ANY, ImapConnection._cmd_id),
    "STARTTLS": _Spec(_NOAUTH, ImapConnection._cmd_starttls),
    "LOGIN": _Spec(_NOAUTH, ImapConnection._cmd_login),
    "AUTHENTICATE": _Spec(_NOAUTH, ImapConnection._cmd_authenticate),
    "ENABLE": _Spec(_AUTH, ImapConnection._cmd_enable),
    "NAMESPACE": _Spec(_AUTH, ImapConnection._cmd_namespace),
    "IDLE": _Spec(_AUTH, ImapConnection._cmd_idle),
    "UNSELECT": _Spec(_SEL, ImapConnection._cmd_unselect),
    "SELECT": _Spec(_AUTH, mailboxes.select, store=True),
    "EXAMINE": _Spec(_AUTH, mailboxes.select, store=True),
    "CREATE": _Spec(_AUTH, mailboxes.create, store=True),
    "DELETE": _Spec(_AUTH, mailboxes.delete, store=True),
    "RENAME": _Spec(_AUTH, mailboxes.rename, store=True),
    "SUBSCRIBE": _Spec(_AUTH, mailboxes.subscribe, store=True),
    "UNSUBSCRIBE": _Spec(_AUTH, mailboxes.unsubscribe, store=True),
    "LIST": _Spec(_AUTH, mailboxes.list_, store=True),
    "LSUB": _Spec(_AUTH, mailboxes.list_, store=True),
    "STATUS": _Spec(_AUTH, mailboxes.status, store=True),
    "APPEND": _Spec(_AUTH, mailboxes.append, store=True),
    "CHECK": _Spec(_SEL, mailboxes.check, store=True),
    "CLOSE": _Spec(_SEL, mailboxes.close, store=True),
    "EXPUNGE": _Spec(_SEL, messages.expunge, store=True),
    "SEARCH": _Spec(_SEL, messages.search, store=True, blocking=inline.search_blocking),
    "FETCH": _Spec(_SEL, messages.fetch, store=True, blocking=inline.fetch_blocking),
    "STORE": _Spec(_SEL, messages.store, store=True, blocking=inline.store_blocking),
    "COPY": _Spec(_SEL, messages.copy, store=True),
    "MOVE": _Spec(_SEL, messages.move, store=True),
}
