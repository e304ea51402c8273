"""A synchronous stand-in for the IMAP adapter, for the byte-level tests (tests/test_imap_*.py).

`Client` feeds bytes to one `ImapConnection` and answers its events the way
`ImapServer` does, on a real `MailStore` in tmp_path: logins against a dict
of passwords, `Execute` by calling `execute()` until it is done.
"""

from __future__ import annotations

import re

from maillab.base.sasl import ScramLookup
from maillab.imap.protocol import NEED_DATA, PAUSED, Authenticate, Closed, Execute, ImapConnection, StartTls
from maillab.store import MailStore
from sasl_support import keys

USER = "mafudge@syr.edu"
OTHER = "tajorgen@syr.edu"
PASSWORD = "maillab"


def msg(subject: str = "hello", body: str = "line one\nline two\n", frm: str = "santa@northpole.org",
        to: str = USER, extra: str = "") -> bytes:
    """A small message in stored form (LF line endings)."""
    return (f"From: {frm}\nTo: {to}\nSubject: {subject}\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"
            f"Message-ID: <{abs(hash(subject))}@lab>\n{extra}\n{body}").encode()


class Client:
    def __init__(self, store: MailStore, passwords: dict[str, str] | None = None, **kwargs: object) -> None:
        self.store = store
        self.passwords = passwords if passwords is not None else {USER: PASSWORD, OTHER: PASSWORD}
        self.conn = ImapConnection("smtp1.syr.edu", **kwargs)   # type: ignore[arg-type]
        self.conn.greet()
        self.greeting = self.conn.data_to_send()
        self.events: list[object] = []
        self.closed: Closed | None = None
        self.chunks = 0                     # times execute() asked for a flush

    def send(self, data: bytes) -> bytes:
        """Feed bytes, answer every event; the response bytes."""
        self.conn.receive_data(data)
        return self.run()

    def run(self) -> bytes:
        out = bytearray()
        conn = self.conn
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                break
            assert ev is not PAUSED
            self.events.append(ev)
            if isinstance(ev, Closed):
                self.closed = ev
                break
            if isinstance(ev, ScramLookup):
                login = ev.login.lower()
                conn.scram_credentials(keys(self.passwords[login], login) if login in self.passwords
                                       else keys("", None))
            elif isinstance(ev, Authenticate):
                login = ev.proven or (ev.login if "@" in ev.login else f"{ev.login}@syr.edu")
                if ev.proven or ev.password is not None and self.passwords.get(login.lower()) == ev.password:
                    conn.login_ok(self.store.user(login), login.lower())
                else:
                    conn.login_failed()
            elif isinstance(ev, Execute):
                while conn.execute():
                    self.chunks += 1
                    out += conn.data_to_send()
            elif isinstance(ev, StartTls):
                conn.tls_started()
        out += conn.data_to_send()
        return bytes(out)

    def cmd(self, line: str | bytes) -> bytes:
        """One command line (CRLF added); `\\n` inside a str becomes CRLF (literals)."""
        data = line.encode("utf-8") if isinstance(line, str) else line
        return self.send(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n")

    def lines(self, line: str | bytes) -> list[str]:
        return self.cmd(line).decode("utf-8", "replace").split("\r\n")[:-1]

    def ok(self, line: str | bytes) -> list[str]:
        """Run a command that must succeed; its untagged lines (the tagged OK checked and dropped)."""
        out = self.lines(line)
        tag = (line if isinstance(line, str) else line.decode()).split(" ", 1)[0]
        assert out and out[-1].startswith(f"{tag} OK"), out
        return out[:-1]

    def login(self, user: str = USER) -> "Client":
        self.ok(f"l1 LOGIN {user} {PASSWORD}")
        return self

    def select(self, mailbox: str = "INBOX", command: str = "SELECT") -> list[str]:
        return self.ok(f"s1 {command} {mailbox}")


def session(store: MailStore, mailbox: str | None = "INBOX", user: str = USER, **kwargs: object) -> Client:
    """A logged-in Client, with `mailbox` selected (None: none)."""
    c = Client(store, **kwargs).login(user)
    if mailbox is not None:
        c.select(mailbox)
    return c


def code(line: str) -> str | None:
    """The response code of a status line ("[APPENDUID 1 2]" -> "APPENDUID 1 2")."""
    m = re.search(r"\[([^\]]*)\]", line)
    return m.group(1) if m else None
