"""What each line of a dialogue means: reply codes, commands and AUTH exchanges, with their RFC.

The Dialogues panel's "explain" mode annotates a transcript with `Note`s made
here: `explain_reply("250 2.1.5 Ok")` says what 250 and 2.1.5 mean and where
they are defined, `explain_command("RCPT TO:<a@b>")` what the command asks,
and an `Explainer` (one per session) follows AUTH PLAIN / AUTH LOGIN, POP3
USER/PASS and IMAP LOGIN, decoding the base64 a student may think is secret,
with a warning when the password crossed the wire in the clear.  TLS is
explained where it shows: STARTTLS and its `220 2.0.0` go-ahead, the refusals
of a login before TLS (`530 5.7.0 Must issue a STARTTLS command first`, `538
5.7.11`, IMAP's LOGINDISABLED and PRIVACYREQUIRED, POP3's STLS and [AUTH]), and
a STARTTLS that is not offered (a stripped host): why MTA-STS and DANE exist.  Between a
354 and the "." line, the client's lines are the message itself: well-known
header fields, the blank line that ends the header section and doubled dots
are explained, and no message line is taken for a command.

Plain data and functions, no Textual: usable (and tested) on its own.  RFC
citations follow the project's form, "RFC 5321 §4.1.1.4".
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from ..smtp.transcript import STRIPPED_NOTE


@dataclass(frozen=True, slots=True)
class Note:
    text: str                 # one line: what the line means
    ref: str = ""             # where it is defined, "RFC 5321 §4.2.2"
    warning: bool = False     # something a student should worry about

    def __str__(self) -> str:
        return f"{self.text} ({self.ref})" if self.ref else self.text


# --- SMTP basic reply codes (RFC 5321 §4.2; AUTH's from RFC 4954 §6) -----------------------
_FIRST_DIGIT = {
    "2": "success", "3": "go on, send the rest", "4": "temporary failure: try again later",
    "5": "permanent failure: do not retry",
}
REPLY_CODES: dict[str, tuple[str, str]] = {
    "211": ("system status", "RFC 5321 §4.2.2"),
    "214": ("help message", "RFC 5321 §4.2.2"),
    "220": ("service ready: the server's greeting (or: go ahead with TLS)", "RFC 5321 §4.3.1"),
    "221": ("closing the connection, goodbye", "RFC 5321 §4.1.1.10"),
    "235": ("authentication succeeded", "RFC 4954 §6"),
    "250": ("requested action okay, completed", "RFC 5321 §4.2.2"),
    "251": ("user not local; will forward", "RFC 5321 §3.4"),
    "252": ("cannot verify the user, but will accept the message", "RFC 5321 §3.5.3"),
    "334": ("AUTH challenge: the server waits for the next base64 line", "RFC 4954 §4"),
    "354": ("start mail input: send the message, end it with a line holding only \".\"",
            "RFC 5321 §4.1.1.4"),
    "421": ("service not available, closing the connection", "RFC 5321 §3.8"),
    "450": ("mailbox unavailable for now (busy, or greylisting): try later", "RFC 5321 §4.2.2"),
    "451": ("local error in processing: try later", "RFC 5321 §4.2.2"),
    "452": ("insufficient system storage, or too many recipients", "RFC 5321 §4.5.3.1.10"),
    "454": ("temporary authentication or TLS failure", "RFC 4954 §6"),
    "455": ("server unable to accommodate the parameters", "RFC 5321 §4.2.2"),
    "500": ("syntax error, command unrecognized (or line too long)", "RFC 5321 §4.2.2"),
    "501": ("syntax error in parameters or arguments", "RFC 5321 §4.2.2"),
    "502": ("command not implemented", "RFC 5321 §4.2.4"),
    "503": ("bad sequence of commands (e.g. RCPT before MAIL)", "RFC 5321 §4.2.2"),
    "504": ("command parameter not implemented", "RFC 5321 §4.2.2"),
    "530": ("authentication required", "RFC 4954 §6"),
    "534": ("authentication mechanism is too weak", "RFC 4954 §6"),
    "535": ("authentication credentials invalid", "RFC 4954 §6"),
    "538": ("encryption required for this authentication mechanism", "RFC 4954 §6"),
    "550": ("mailbox unavailable: not found, no access, or refused by policy", "RFC 5321 §4.2.2"),
    "551": ("user not local; try the given path", "RFC 5321 §3.4"),
    "552": ("exceeded storage allocation (message too big)", "RFC 5321 §4.2.2"),
    "553": ("mailbox name not allowed (bad address syntax)", "RFC 5321 §4.2.2"),
    "554": ("transaction failed (or: no SMTP service here, relay denied)", "RFC 5321 §4.2.2"),
    "555": ("MAIL FROM/RCPT TO parameters not recognized", "RFC 5321 §4.2.2"),
}

# --- enhanced status codes (RFC 3463; registry RFC 5248) -----------------------------------
_CLASSES = {"2": "success", "4": "persistent transient failure", "5": "permanent failure"}
_SUBJECTS = {
    "0": ("other or undefined status", "RFC 3463 §3.1"),
    "1": ("addressing", "RFC 3463 §3.2"),
    "2": ("mailbox", "RFC 3463 §3.3"),
    "3": ("mail system", "RFC 3463 §3.4"),
    "4": ("network and routing", "RFC 3463 §3.5"),
    "5": ("mail delivery protocol", "RFC 3463 §3.6"),
    "6": ("message content or media", "RFC 3463 §3.7"),
    "7": ("security or policy", "RFC 3463 §3.8"),
}
ENHANCED_DETAILS: dict[str, str] = {
    "0.0": "other undefined status",
    "1.0": "other address status", "1.1": "bad destination mailbox address (no such user)",
    "1.2": "bad destination system address (no such domain)",
    "1.3": "bad destination mailbox address syntax", "1.5": "destination address valid",
    "1.6": "destination mailbox has moved", "1.7": "bad sender's mailbox address syntax",
    "1.8": "bad sender's system address", "1.10": "recipient address has a null MX (RFC 7505)",
    "2.0": "other or undefined mailbox status", "2.1": "mailbox disabled, not accepting messages",
    "2.2": "mailbox full", "2.3": "message length exceeds administrative limit",
    "2.4": "mailing list expansion problem",
    "3.0": "other or undefined mail system status", "3.1": "mail system full",
    "3.2": "system not accepting network messages", "3.3": "system not capable of selected features",
    "3.4": "message too big for system", "3.5": "system incorrectly configured",
    "4.0": "other or undefined network or routing status", "4.1": "no answer from host",
    "4.2": "bad connection", "4.3": "directory server failure (DNS)", "4.4": "unable to route",
    "4.5": "mail system congestion", "4.6": "routing loop detected", "4.7": "delivery time expired",
    "5.0": "other or undefined protocol status", "5.1": "invalid command", "5.2": "syntax error",
    "5.3": "too many recipients", "5.4": "invalid command arguments", "5.5": "wrong protocol version",
    "5.6": "authentication exchange line is too long (RFC 4954)",
    "6.0": "other or undefined media error", "6.1": "media not supported",
    "6.2": "conversion required and prohibited", "6.3": "conversion required but not supported",
    "6.7": "non-ASCII addresses not permitted for that sender or recipient (RFC 6531)",
    "7.0": "other or undefined security status", "7.1": "delivery not authorized, message refused",
    "7.2": "mailing list expansion prohibited", "7.3": "security conversion required but not possible",
    "7.4": "security features not supported", "7.5": "cryptographic failure",
    "7.7": "message integrity failure", "7.8": "authentication credentials invalid (RFC 4954)",
    "7.9": "authentication mechanism is too weak (RFC 4954)",
    "7.10": "encryption needed (RFC 5248)",
    "7.11": "encryption required for requested authentication mechanism (RFC 4954)",
    "7.13": "user account disabled (RFC 5248)",
    "7.23": "SPF validation failed (RFC 7372)", "7.25": "reverse DNS validation failed (RFC 7372)",
}

# --- SMTP commands (RFC 5321 §4.1.1 and extensions) ----------------------------------------
SMTP_COMMANDS: dict[str, tuple[str, str]] = {
    "HELO": ("the client says hello and names itself (plain SMTP)", "RFC 5321 §4.1.1.1"),
    "EHLO": ("extended hello: the server answers with the extensions it offers", "RFC 5321 §4.1.1.1"),
    "MAIL": ("starts a transaction and gives the envelope sender (the bounce address)",
             "RFC 5321 §4.1.1.2"),
    "RCPT": ("one envelope recipient; repeat it for each one", "RFC 5321 §4.1.1.3"),
    "DATA": ("asks to send the message itself; the server should answer 354", "RFC 5321 §4.1.1.4"),
    "RSET": ("aborts the current transaction", "RFC 5321 §4.1.1.5"),
    "VRFY": ("asks whether a user exists (servers rarely say)", "RFC 5321 §4.1.1.6"),
    "EXPN": ("asks to expand a mailing list", "RFC 5321 §4.1.1.7"),
    "HELP": ("asks for help", "RFC 5321 §4.1.1.8"),
    "NOOP": ("does nothing; keeps the connection alive", "RFC 5321 §4.1.1.9"),
    "QUIT": ("asks the server to close the connection", "RFC 5321 §4.1.1.10"),
    "STARTTLS": ("upgrade this connection to TLS; everything after is encrypted", "RFC 3207 §4"),
    "AUTH": ("log in with a SASL mechanism: PLAIN and LOGIN send the password in base64, not encryption; "
             "SCRAM-SHA-256 sends only a proof of it (RFC 7677)", "RFC 4954 §4"),
    "BDAT": ("sends the message in chunks (CHUNKING)", "RFC 3030 §2"),
    ".": ("end of the message: a line holding only a dot", "RFC 5321 §4.1.1.4"),
}
# EHLO keywords (the "250-..." lines of the EHLO reply)
EHLO_KEYWORDS: dict[str, tuple[str, str]] = {
    "PIPELINING": ("the client may send several commands without waiting", "RFC 2920"),
    "SIZE": ("the largest message the server takes, in octets", "RFC 1870"),
    "8BITMIME": ("message bodies may contain 8-bit data", "RFC 6152"),
    "ENHANCEDSTATUSCODES": ("replies carry codes like 2.1.5 after the basic code", "RFC 2034"),
    "SMTPUTF8": ("addresses and headers may be UTF-8", "RFC 6531"),
    "STARTTLS": ("the connection can be upgraded to TLS", "RFC 3207"),
    "AUTH": ("the SASL mechanisms a client may log in with", "RFC 4954"),
    "DSN": ("delivery status notification options", "RFC 3461"),
    "CHUNKING": ("BDAT may be used instead of DATA", "RFC 3030"),
    "HELP": ("the server answers HELP", "RFC 5321 §4.1.1.8"),
}

# --- message header fields, as typed after DATA (RFC 5322 §3.6 and others) -------------------
HEADER_FIELDS: dict[str, tuple[str, str]] = {
    "from": ("the author, as mail clients show it; not the envelope sender of MAIL FROM",
             "RFC 5322 §3.6.2"),
    "sender": ("who sent it on the author's behalf", "RFC 5322 §3.6.2"),
    "reply-to": ("where replies should go", "RFC 5322 §3.6.2"),
    "to": ("the recipients the message names; RCPT TO alone decides who gets it", "RFC 5322 §3.6.3"),
    "cc": ("copies, as the message names them", "RFC 5322 §3.6.3"),
    "bcc": ("blind copies: a header a sender should not leave in", "RFC 5322 §3.6.3"),
    "subject": ("the topic", "RFC 5322 §3.6.5"),
    "date": ("when the author sent it", "RFC 5322 §3.6.1"),
    "message-id": ("a unique identifier of this message", "RFC 5322 §3.6.4"),
    "in-reply-to": ("the Message-ID this one answers", "RFC 5322 §3.6.4"),
    "references": ("the Message-IDs of the thread", "RFC 5322 §3.6.4"),
    "received": ("a trace field: each hop adds one on top", "RFC 5321 §4.4"),
    "return-path": ("the envelope sender, stamped at final delivery", "RFC 5321 §4.4"),
    "mime-version": ("the message uses MIME", "RFC 2045 §4"),
    "content-type": ("what the body is: text/plain, multipart/..., and its charset", "RFC 2045 §5"),
    "content-transfer-encoding": ("how the body is encoded: 7bit, base64, quoted-printable",
                                  "RFC 2045 §6"),
    "dkim-signature": ("a DKIM signature over chosen headers and the body", "RFC 6376 §3.5"),
    "authentication-results": ("what a receiving server found: SPF, DKIM, DMARC", "RFC 8601 §2"),
    "received-spf": ("the SPF verdict: may the client's IP send mail for the MAIL FROM domain?",
                     "RFC 7208 §9.1"),
}
_HEADER_END = Note("a blank line: the header section ends here, the body follows", "RFC 5322 §2.1")
_FOLDED = Note("starts with white space: it continues the header field above (folding)", "RFC 5322 §2.2.3")
_STUFFED = Note("a doubled dot: the client added one so the line can not end the message; "
                "the server removes it", "RFC 5321 §4.5.2")


# --- POP3 (RFC 1939) and IMAP (RFC 9051) -----------------------------------------------------
POP3_COMMANDS: dict[str, tuple[str, str]] = {
    "USER": ("names the mailbox to log in to", "RFC 1939 §7"),
    "PASS": ("the password, as typed: POP3 sends it in the clear", "RFC 1939 §7"),
    "APOP": ("log in with an MD5 digest instead of the password", "RFC 1939 §7"),
    "AUTH": ("log in with a SASL mechanism", "RFC 5034 §4"),
    "STAT": ("how many messages, how many octets", "RFC 1939 §5"),
    "LIST": ("the size of each message", "RFC 1939 §5"),
    "RETR": ("download one message", "RFC 1939 §5"),
    "DELE": ("mark a message deleted (removed at QUIT)", "RFC 1939 §5"),
    "NOOP": ("does nothing", "RFC 1939 §5"),
    "RSET": ("unmark every deleted message", "RFC 1939 §5"),
    "QUIT": ("commit deletions and close", "RFC 1939 §6"),
    "TOP": ("the headers and the first lines of a message", "RFC 1939 §7"),
    "UIDL": ("a unique id per message, so clients know what they have seen", "RFC 1939 §7"),
    "CAPA": ("lists the server's capabilities", "RFC 2449 §5"),
    "STLS": ("upgrade this connection to TLS", "RFC 2595 §4"),
}
IMAP_COMMANDS: dict[str, tuple[str, str]] = {
    "CAPABILITY": ("lists the server's capabilities", "RFC 9051 §6.1.1"),
    "NOOP": ("does nothing; lets the server report changes", "RFC 9051 §6.1.2"),
    "LOGOUT": ("ends the session", "RFC 9051 §6.1.3"),
    "STARTTLS": ("upgrade this connection to TLS", "RFC 9051 §6.2.1"),
    "AUTHENTICATE": ("log in with a SASL mechanism", "RFC 9051 §6.2.2"),
    "LOGIN": ("user name and password, as typed: in the clear without TLS", "RFC 9051 §6.2.3"),
    "ENABLE": ("turns on extensions", "RFC 9051 §6.3.1"),
    "SELECT": ("opens a mailbox for reading and writing", "RFC 9051 §6.3.2"),
    "EXAMINE": ("opens a mailbox read-only", "RFC 9051 §6.3.3"),
    "CREATE": ("creates a mailbox", "RFC 9051 §6.3.4"),
    "DELETE": ("deletes a mailbox", "RFC 9051 §6.3.5"),
    "RENAME": ("renames a mailbox", "RFC 9051 §6.3.6"),
    "LIST": ("lists mailboxes", "RFC 9051 §6.3.9"),
    "STATUS": ("counts of a mailbox without opening it", "RFC 9051 §6.3.11"),
    "APPEND": ("adds a message to a mailbox (a client saving to Sent)", "RFC 9051 §6.3.12"),
    "IDLE": ("waits for the server to push changes", "RFC 9051 §6.3.13"),
    "CLOSE": ("expunges and closes the mailbox", "RFC 9051 §6.4.1"),
    "EXPUNGE": ("removes messages flagged \\Deleted", "RFC 9051 §6.4.3"),
    "SEARCH": ("finds messages", "RFC 9051 §6.4.4"),
    "FETCH": ("reads parts of messages: flags, headers, bodies", "RFC 9051 §6.4.5"),
    "STORE": ("changes flags", "RFC 9051 §6.4.6"),
    "COPY": ("copies messages to another mailbox", "RFC 9051 §6.4.7"),
    "MOVE": ("moves messages to another mailbox", "RFC 9051 §6.4.8"),
    "UID": ("the next command uses UIDs instead of sequence numbers", "RFC 9051 §6.4.9"),
}

# SMTP replies about TLS, by code and enhanced code (and a word of the text, where one pair has
# several meanings: 530 5.7.0 is also "Authentication required")
TLS_REPLIES: dict[tuple[str, str], Note] = {
    ("220", "2.0.0"): Note("STARTTLS's go-ahead: the TLS handshake starts now; both sides forget what was "
                           "said before it, and the client says EHLO again inside TLS", "RFC 3207 §4.2"),
    ("530", "5.7.0 Must issue a STARTTLS"): Note(
        "no login before TLS here (RFC 8314 §3, Postfix's smtpd_tls_auth_only): send STARTTLS, then "
        "EHLO again, then AUTH", "RFC 3207 §4"),
    ("538", "5.7.11"): Note("this mechanism sends the password itself (PLAIN, LOGIN), so the server takes it "
                            "only inside TLS: STARTTLS first", "RFC 4954 §6"),
}
DOWNGRADE = Note("no STARTTLS on this hop: a sender whose TLS is only opportunistic (may) goes on in "
                 "plaintext, one that requires TLS (encrypt) defers. Anyone on the path can cut STARTTLS "
                 "from EHLO like this, and SMTP alone can not tell: MTA-STS (RFC 8461) and DANE (RFC 7672) "
                 "let a domain publish that its MX hosts must do TLS", "RFC 3207 §6", warning=True)
# capabilities (in IMAP's CAPABILITY list, on a line of POP3's CAPA) and response codes of IMAP
# and POP3 about TLS
TLS_WORDS: dict[str, dict[str, Note]] = {
    "imap": {
        "STARTTLS": Note("STARTTLS: the connection can be upgraded to TLS", "RFC 9051 §6.2.1"),
        "LOGINDISABLED": Note("LOGINDISABLED: LOGIN (and AUTHENTICATE here) are refused until TLS is up: "
                              "STARTTLS first (a client on the server's own address is spared, as "
                              "Dovecot spares it)", "RFC 9051 §6.2.3"),
        "[PRIVACYREQUIRED]": Note("PRIVACYREQUIRED: refused because the connection is not private yet "
                                  "(no TLS)", "RFC 5530 §3"),
    },
    "pop3": {
        "STLS": Note("STLS: the connection can be upgraded to TLS", "RFC 2595 §4"),
        "[AUTH]": Note("[AUTH]: the login itself failed, not the server (wrong credentials, or here "
                       "maybe: no login before TLS, STLS first)", "RFC 3206 §4"),
    },
}

_TLS_WORD = re.compile(r"\[[A-Z-]+\]|[A-Z0-9=+-]+")      # a response code whole ("[AUTH]"), or a word
_REPLY = re.compile(r"^(\d{3})([ -])(?:([245])\.(\d{1,3})\.(\d{1,3})\b)?")
IMPLICIT_TLS = ("smtps", "imaps", "pop3s")
_CLEAR = {   # what a password looked like on the wire without TLS, per way of sending it
    "auth": ("the password crossed the wire in the clear: base64 is an encoding, not encryption",
             "RFC 4954 §4"),
    "pop3": ("POP3 PASS sends the password as plain text, readable by anyone on the wire",
             "RFC 1939 §7"),
    "imap": ("IMAP LOGIN sends the password as a plain string; a server without TLS should "
             "refuse it (LOGINDISABLED)", "RFC 9051 §6.2.3"),
}


def _protocol_family(protocol: str) -> str:
    p = protocol.lower()
    if p.startswith("pop3"):
        return "pop3"
    if p.startswith("imap"):
        return "imap"
    return "smtp"


def explain_enhanced(code: str) -> Note | None:
    """"5.1.1" -> what it means (RFC 3463 §3)."""
    parts = code.split(".")
    if len(parts) != 3 or parts[0] not in _CLASSES or parts[1] not in _SUBJECTS:
        return None
    detail = ENHANCED_DETAILS.get(f"{parts[1]}.{parts[2]}")
    subject, ref = _SUBJECTS[parts[1]]
    what = detail or f"{subject} (detail {parts[2]})"
    return Note(f"{code}: {_CLASSES[parts[0]]}, {what}", ref)


def explain_reply(line: str, protocol: str = "smtp") -> list[Note]:
    """Notes for a server line: basic code, enhanced code, EHLO keyword, POP3/IMAP status."""
    family = _protocol_family(protocol)
    if family == "pop3":
        notes = _tls_words("pop3", line)
        if line.startswith("+OK"):
            return [Note("+OK: the command succeeded", "RFC 1939 §3")] + notes
        if line.startswith("-ERR"):
            return [Note("-ERR: the command failed", "RFC 1939 §3")] + notes
        return notes
    if family == "imap":
        return _explain_imap_response(line) + _tls_words("imap", line)
    m = _REPLY.match(line)
    if m is None:
        return []
    code, sep = m.group(1), m.group(2)
    notes = []
    known = REPLY_CODES.get(code)
    if known is not None:
        notes.append(Note(f"{code}: {known[0]}", known[1]))
    elif code[0] in _FIRST_DIGIT:
        notes.append(Note(f"{code}: {_FIRST_DIGIT[code[0]]}", "RFC 5321 §4.2.1"))
    if m.group(3):
        enhanced = explain_enhanced(f"{m.group(3)}.{m.group(4)}.{m.group(5)}")
        if enhanced is not None:
            notes.append(enhanced)
    if code == "250" and "queued as" in line.lower():
        notes.append(Note("now on disk: from here the server is responsible for the message",
                          "RFC 5321 §6.1"))
    if code == "250" and not m.group(3):
        keyword = line[4:].split(" ", 1)[0].upper()
        if keyword in EHLO_KEYWORDS:
            text, ref = EHLO_KEYWORDS[keyword]
            notes = [Note(f"{keyword}: {text}", ref)]
    notes += [note for (tls_code, words), note in TLS_REPLIES.items()
              if tls_code == code and line[4:].startswith(words)]
    if sep == "-" and code != "250":
        notes.append(Note("a \"-\" after the code: more lines of this reply follow", "RFC 5321 §4.2.1"))
    return notes


def _tls_words(family: str, line: str) -> list[Note]:
    """IMAP's or POP3's capabilities and response codes about TLS that `line` names."""
    words = _TLS_WORD.findall(line.upper())
    listing = "CAPABILITY" in words if family == "imap" else len(words) == 1    # POP3: one per line
    return [note for word, note in TLS_WORDS[family].items()
            if word in words and (word.startswith("[") or listing)]


def _explain_imap_response(line: str) -> list[Note]:
    words = line.split(" ", 2)
    if len(words) < 2:
        return []
    status = words[1].upper()
    if words[0] == "*":
        return [Note(f"untagged {status}: data the server reports without being asked",
                     "RFC 9051 §7")] if status in ("OK", "NO", "BAD", "BYE", "PREAUTH") else []
    if words[0] == "+":
        return [Note("continuation: the server waits for more from the client", "RFC 9051 §7.5")]
    meaning = {"OK": "the tagged command succeeded", "NO": "the tagged command failed",
               "BAD": "the tagged command was not understood"}.get(status)
    return [Note(f"{status}: {meaning}", "RFC 9051 §7.1")] if meaning else []


def explain_command(line: str, protocol: str = "smtp") -> Note | None:
    """A note for a client line: which command, what it asks, where it is defined."""
    family = _protocol_family(protocol)
    words = line.strip().split()
    if not words:
        return None
    if family == "imap":
        if len(words) < 2:
            return None
        verb = words[1].upper()
        if verb == "UID" and len(words) > 2:
            verb = words[2].upper()
        table = IMAP_COMMANDS
    else:
        verb = words[0].upper()
        if family == "smtp" and ":" in verb:      # "MAIL FROM:<a>" typed as "mail from:a"
            verb = verb.split(":", 1)[0]
        table = POP3_COMMANDS if family == "pop3" else SMTP_COMMANDS
    known = table.get(verb)
    return Note(f"{verb}: {known[0]}", known[1]) if known else None


def b64(text: str) -> bytes | None:
    """The octets a base64 text stands for; None if it is not base64."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def plain_credentials(text: str) -> tuple[bytes, bytes, bytes] | None:
    """AUTH PLAIN's message, base64 of authzid\\0user\\0password (RFC 4616 §2): its three parts."""
    raw = b64(text)
    parts = raw.split(b"\0") if raw is not None else []
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _show(raw: bytes) -> str:
    return repr(raw.decode("utf-8", "replace"))


class Explainer:
    """Follows one session's lines and explains them, AUTH exchanges decoded.

    `tls` starts True for implicit-TLS services (smtps, imaps, pop3s) and turns
    True when STARTTLS (or STLS) is answered with success.
    """

    def __init__(self, protocol: str = "smtp") -> None:
        self.protocol = protocol
        self.family = _protocol_family(protocol)
        self.tls = protocol.lower() in IMPLICIT_TLS
        self._expect: str | None = None     # "plain", "login-user", "login-pass": the next client line
        self._starttls_asked = False
        self._message: str | None = None    # after a 354: "header", "body", or "cut" (lines left out)

    def _clear_warning(self, how: str = "auth") -> Note:
        text, ref = _CLEAR[how]
        if self.tls:
            return Note("inside TLS: only this lab sees the password; the wire carried ciphertext", ref)
        return Note(text, ref, warning=True)

    def feed(self, direction: str, text: str) -> list[Note]:
        """The notes for one line ("client" or "server"; "note" lines get none)."""
        if direction == "client":
            return self._message_line(text) if self._message is not None else self._client(text)
        if direction == "server":
            return self._server(text)
        if text == STRIPPED_NOTE:
            return [DOWNGRADE]
        if self._message is not None:
            self._message = "cut"       # a remark amid the message (lines not shown): where are we?
        return []

    def _message_line(self, text: str) -> list[Note]:
        """A line of the message the client sends after the 354 (the "." line ends it)."""
        if text == ".":
            self._message = None
            return self._client(text)
        if text.startswith(".."):
            return [_STUFFED]
        if self._message != "header":
            return []
        if not text:
            self._message = "body"
            return [_HEADER_END]
        if text[:1] in (" ", "\t"):
            return [_FOLDED]
        name = text.split(":", 1)[0]
        known = HEADER_FIELDS.get(name.lower()) if ":" in text else None
        return [Note(f"{name}: {known[0]}", known[1])] if known else []

    def _client(self, text: str) -> list[Note]:
        expect, self._expect = self._expect, None
        if expect is not None and text != "*":
            return self._auth_response(expect, text)
        words = text.split()
        verb = words[0].upper() if words else ""
        note = explain_command(text, self.protocol)
        notes = [note] if note else []
        if self.family == "smtp" and verb == "AUTH" and len(words) >= 2:
            mech = words[1].upper()
            if mech == "PLAIN" and len(words) >= 3:
                notes += self._plain(words[2])
            elif mech == "PLAIN":
                self._expect = "plain"
            elif mech == "LOGIN" and len(words) >= 3:
                notes += self._decoded("user name", words[2])
                self._expect = "login-pass"
            elif mech == "LOGIN":
                self._expect = "login-user"
        elif self.family == "pop3" and verb == "PASS":
            notes.append(self._clear_warning("pop3"))
        elif self.family == "pop3" and verb == "AUTH" and len(words) >= 3 and words[1].upper() == "PLAIN":
            notes += self._plain(words[2])
        elif self.family == "imap" and len(words) >= 2 and words[1].upper() == "LOGIN":
            notes.append(self._clear_warning("imap"))
        if verb in ("STARTTLS", "STLS") or (self.family == "imap" and len(words) >= 2
                                            and words[1].upper() == "STARTTLS"):
            self._starttls_asked = True
        return notes

    def _server(self, text: str) -> list[Note]:
        notes = explain_reply(text, self.protocol)
        if self.family == "smtp" and text.startswith("354"):
            self._message = "header"
        if self._starttls_asked:
            self._starttls_asked = False
            if text.startswith(("220", "+OK")) or " OK" in text[:20]:
                self.tls = True
                notes.append(Note("from here on the connection is encrypted (TLS)", "RFC 3207 §4"))
            elif self.family == "smtp" and text.startswith(("502", "500", "454")):
                notes.append(DOWNGRADE)
        if self.family == "smtp" and not text.startswith("334"):
            self._expect = None                 # the exchange is over (235, 535, 5xx...)
        elif self.family == "smtp":
            challenge = text[4:].strip()
            decoded = b64(challenge) if challenge else b""
            if decoded:
                notes.append(Note(f"the challenge decodes to {_show(decoded)}", "RFC 4954 §4"))
            prompt = bytes(c for c in decoded.lower() if 97 <= c <= 122)   # "User Name\0" -> b"username"
            if prompt.startswith(b"username"):
                self._expect = "login-user"
            elif prompt.startswith(b"password"):
                self._expect = "login-pass"
        return notes

    def _auth_response(self, expect: str, text: str) -> list[Note]:
        if expect == "plain":
            return self._plain(text)
        if expect == "login-user":
            return self._decoded("user name", text)
        return self._decoded("password", text) + [self._clear_warning()]

    def _decoded(self, what: str, text: str) -> list[Note]:
        raw = b64(text)
        if raw is None:
            return [Note(f"the {what}, which should be base64 but is not", "RFC 4954 §4")]
        return [Note(f"base64 of the {what}: {_show(raw)}", "RFC 4954 §4")]

    def _plain(self, text: str) -> list[Note]:
        parts = plain_credentials(text)
        if parts is None:
            return [Note("AUTH PLAIN data that is not base64 of authzid\\0user\\0password", "RFC 4616 §2")]
        authzid, user, password = parts
        who = f"user {_show(user)}" + (f" (acting as {_show(authzid)})" if authzid else "")
        return [Note(f"base64 of \\0user\\0password: {who}, password {_show(password)}", "RFC 4616 §2"),
                self._clear_warning()]
