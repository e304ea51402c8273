"""The eavesdropper's view of a session: what an observer on the loopback wire reads of it.

`wire_view(protocol, pieces, tls, totals)` turns a session's plaintext wire octets (the
`WireData` its server published: what it read and wrote before TLS, the first
`net.wiretap.KEEP` octets) into lines, with every password sent in the clear found and
decoded — SMTP and POP3 AUTH PLAIN and LOGIN (base64), IMAP LOGIN and AUTHENTICATE PLAIN,
POP3 USER/PASS — then, once TLS is up, one line for all the rest: "TLS 1.3, 1234 bytes
client → server, 5678 server → client" (`WireTotals`, known when the session ends).  TLS on
connect shows nothing readable at all.  A view that found a password ends with the lesson.

Plain data and functions, no Textual: the Dialogues panel draws the lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..base.events import WireTotals
from ..smtp.transcript import printable
from .explain import IMPLICIT_TLS, b64, plain_credentials

Kind = Literal["client", "server", "note", "tls", "secret", "lesson"]
LESSON = "Anyone on this wire reads the password: use STARTTLS (RFC 3207) or a TLS port (RFC 8314)"
LINE_LIMIT = 200            # characters of one wire line shown

_IMAP_STRING = r'("(?:[^"\\]|\\.)*"|[^ "]+)'
_IMAP_LOGIN = re.compile(rf"^\S+ +LOGIN +{_IMAP_STRING} +{_IMAP_STRING}", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class WireLine:
    kind: Kind                # who sent it ("client", "server"), or the view's own line
    text: str


def wire_view(protocol: str, pieces: Sequence[tuple[str, bytes]], tls: str = "",
              totals: WireTotals | None = None) -> list[WireLine]:
    """The eavesdropper's lines of a session speaking `protocol`: its plaintext `pieces`
    ((side, octets), in wire order), `tls` ("TLS 1.3", once it is up) and its `totals`."""
    if protocol.lower() in IMPLICIT_TLS:
        return [WireLine("tls", f"{tls or 'TLS'} from the first byte: {_counted(totals)} — nothing readable")]
    out: list[WireLine] = []
    reader = _Credentials(protocol)
    for side, raw in _lines(pieces):
        out.append(WireLine(side, printable(raw, LINE_LIMIT)))
        secret = reader.feed(side, raw.decode("utf-8", "replace"))
        if secret:
            out.append(WireLine("secret", secret))
    if totals is not None:
        unseen = totals.plain_client + totals.plain_server - sum(len(data) for _, data in pieces)
        if unseen > 0:
            out.append(WireLine("note", f"… {unseen} more plaintext octets, readable too (not kept here)"))
    if tls:
        out.append(WireLine("tls", f"{tls}, {_counted(totals)} — ciphertext, nothing readable"))
    elif totals is not None:
        out.append(WireLine("note", "no TLS: every octet of this session crossed the wire readable"))
    if reader.found:
        out.append(WireLine("lesson", LESSON))
    return out


def _counted(totals: WireTotals | None) -> str:
    if totals is None:
        return "bytes counted when the session ends"
    return f"{totals.tls_client} bytes client → server, {totals.tls_server} server → client"


def _lines(pieces: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The wire's lines in order, each side's octets joined across pieces (CR LF cut off)."""
    out: list[tuple[str, bytes]] = []
    partial: dict[str, bytes] = {}
    for side, data in pieces:
        *complete, partial[side] = (partial.get(side, b"") + data).split(b"\n")
        out += [(side, line.removesuffix(b"\r")) for line in complete]
    return out + [(side, rest) for side, rest in partial.items() if rest]


def _unquoted(word: str) -> str:
    if word.startswith('"') and word.endswith('"') and len(word) >= 2:
        return re.sub(r"\\(.)", r"\1", word[1:-1])
    return word


class _Credentials:
    """Follows the client's lines for a password sent in the clear; `feed` says what it read."""

    def __init__(self, protocol: str) -> None:
        p = protocol.lower()
        self.family = "pop3" if p.startswith("pop3") else "imap" if p.startswith("imap") else "smtp"
        self.expect: list[str] = []     # what the client's next lines are: "plain", "user", "password"
        self.user = ""
        self.found = False

    def feed(self, side: str, text: str) -> str:
        if side != "client":
            return ""
        if self.expect:
            what = self.expect.pop(0)
            return "" if text.strip() == "*" else self._response(what, text)
        words = text.split()
        verb = words[0].upper() if words else ""
        if self.family == "imap":
            return self._imap(text, words)
        if self.family == "pop3" and verb == "USER" and len(words) > 1:
            self.user = text.split(" ", 1)[1]
        elif self.family == "pop3" and verb == "PASS" and len(words) > 1:
            return self._said(text.split(" ", 1)[1], "as typed")
        elif verb == "AUTH" and len(words) > 1:
            return self._sasl(words[1].upper(), words[2:])
        return ""

    def _imap(self, text: str, words: list[str]) -> str:
        login = _IMAP_LOGIN.match(text)
        if login is not None:
            self.user = _unquoted(login.group(1))
            return self._said(_unquoted(login.group(2)), "as typed")
        if len(words) > 2 and words[1].upper() == "AUTHENTICATE":
            return self._sasl(words[2].upper(), words[3:])
        return ""

    def _sasl(self, mechanism: str, initial: list[str]) -> str:
        """AUTH / AUTHENTICATE with PLAIN or LOGIN (SCRAM sends no password: nothing to read)."""
        steps = {"PLAIN": ["plain"], "LOGIN": ["user", "password"]}.get(mechanism, [])
        if initial and steps and initial[0] != "=":
            what = steps.pop(0)
            self.expect = steps
            return self._response(what, initial[0])
        self.expect = steps
        return ""

    def _response(self, what: str, text: str) -> str:
        if what == "plain":
            parts = plain_credentials(text)
            if parts is None:
                return ""
            self.user = parts[1].decode("utf-8", "replace")
            return self._said(parts[2].decode("utf-8", "replace"), "decoded from base64")
        raw = b64(text)
        if raw is None:
            return ""
        if what == "user":
            self.user = raw.decode("utf-8", "replace")
            return ""
        return self._said(raw.decode("utf-8", "replace"), "decoded from base64")

    def _said(self, password: str, how: str) -> str:
        self.found = True
        who = f" of {self.user!r}" if self.user else ""
        return f"password{who}: {password!r} ({how})"
