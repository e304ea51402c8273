"""Which SMTP command may come when: the command-order rules of RFC 5321 §4.1.4, as data.

`SmtpConnection` (protocol.py) looks a command up here before it runs it; a
command not allowed in the session's state gets `503 5.5.1 Error: <why>` with
the reason from `WHY_NOT` (Postfix's words).  Everything that changes the state
is in protocol.py; this file says only what each state allows.

    GREETED --HELO/EHLO--> READY --MAIL--> MAIL --RCPT--> RCPT --DATA--> (body) --> READY
                                                          RCPT --BDAT--> BDAT --BDAT LAST--> READY
    HELO/EHLO and RSET end a transaction (back to READY; RFC 5321 §4.1.1.1, §4.1.1.5)
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    GREETED = "greeted"     # banner sent, no HELO/EHLO yet
    READY = "ready"         # after HELO/EHLO, RSET or a message: no transaction
    MAIL = "mail"           # MAIL FROM accepted, no recipient yet
    RCPT = "rcpt"           # at least one RCPT TO accepted
    BDAT = "bdat"           # a BDAT chunk without LAST taken (RFC 3030 §2)
    DATA = "data"           # reading the message after 354 (lines are not commands)
    SASL = "sasl"           # AUTH waits for the client's next response line (RFC 4954 §4)
    CLOSED = "closed"


_ANYTIME = {"NOOP", "RSET", "QUIT", "HELP", "VRFY", "EXPN"}   # RFC 5321 §4.1.4: any time
_SESSION = {"HELO", "EHLO"}                                 # any time, resetting the transaction

ALLOWED: dict[State, frozenset[str]] = {
    # RFC 5321 §4.1.4: "a session ... MUST be started with EHLO/HELO" before MAIL;
    # RFC 4954 §4 (AUTH) and RFC 3207 §4 (STARTTLS) come after EHLO too
    State.GREETED: frozenset(_ANYTIME | _SESSION),
    # RFC 4954 §4: "AUTH ... not permitted during a mail transaction"; RFC 3207 §4 likewise
    State.READY: frozenset(_ANYTIME | _SESSION | {"MAIL", "AUTH", "STARTTLS"}),
    # RFC 5321 §4.1.4: MAIL starts a transaction, RCPT follows it, DATA needs a recipient
    State.MAIL: frozenset(_ANYTIME | _SESSION | {"RCPT"}),
    State.RCPT: frozenset(_ANYTIME | _SESSION | {"RCPT", "DATA", "BDAT"}),
    # RFC 3030 §2: once BDAT has started a message, only BDAT, RSET, QUIT (and NOOP) until LAST
    State.BDAT: frozenset({"BDAT", "RSET", "QUIT", "NOOP"}),
}

# Commands that exist only as service extensions: refused after HELO (RFC 5321 §4.1.1.1)
EXTENSION_COMMANDS = frozenset({"AUTH", "BDAT", "STARTTLS"})

# Why a known command is refused in a state (503 5.5.1 Error: ...), Postfix's words
WHY_NOT: dict[str, dict[State, str]] = {
    "MAIL": {State.GREETED: "send HELO/EHLO first", State.MAIL: "nested MAIL command",
             State.RCPT: "nested MAIL command", State.BDAT: "nested MAIL command"},
    "RCPT": {State.GREETED: "need MAIL command", State.READY: "need MAIL command",
             State.BDAT: "RCPT after BDAT (RFC 3030 §2)"},
    "DATA": {State.GREETED: "need RCPT command", State.READY: "need RCPT command",
             State.MAIL: "need RCPT command", State.BDAT: "DATA after BDAT (RFC 3030 §2)"},
    "BDAT": {State.GREETED: "need RCPT command", State.READY: "need RCPT command",
             State.MAIL: "need RCPT command"},
    "AUTH": {State.GREETED: "send EHLO first", State.MAIL: "MAIL transaction in progress",
             State.RCPT: "MAIL transaction in progress", State.BDAT: "MAIL transaction in progress"},
    "STARTTLS": {State.GREETED: "send EHLO first", State.MAIL: "MAIL transaction in progress",
                 State.RCPT: "MAIL transaction in progress", State.BDAT: "MAIL transaction in progress"},
}
IN_BDAT = "only BDAT, RSET, QUIT or NOOP until BDAT LAST (RFC 3030 §2)"


def refusal(command: str, state: State) -> str | None:
    """None if `command` may come in `state`; else the text of its 503."""
    if command in ALLOWED.get(state, frozenset()):
        return None
    return WHY_NOT.get(command, {}).get(state) or (IN_BDAT if state is State.BDAT else "bad sequence of commands")
