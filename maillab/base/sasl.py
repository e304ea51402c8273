"""SASL server exchanges without I/O (RFC 4422): PLAIN (RFC 4616), LOGIN and SCRAM-SHA-256
(RFC 5802, RFC 7677), one `SaslExchange` per AUTH / AUTHENTICATE, shared by SMTP, IMAP and POP3.

The protocol feeds the exchange the client's messages, base64-decoded (base64 and the
continuation form, "334 ", "+ ", stay with each protocol), and sends or waits on what it answers:

    x = SaslExchange("SCRAM-SHA-256")
    x.start(initial)         # the initial response (SASL-IR, `AUTH m ir`), or None
    x.respond(message)       # each later client message
    x.credentials(found)     # the answer to a ScramLookup (the directory's, via the adapter)
      -> Challenge(data)     send it, read the client's next message
      -> ScramLookup(login)  an event for the adapter: it answers with the user's stored keys
      -> Authenticate(...)   an event for the adapter: the login's verdict (base/sansio.py);
                             PLAIN and LOGIN carry the password to check, SCRAM-SHA-256 the
                             account whose keys the client's proof matched (None: it did not)
      -> SaslFailure(text)   a malformed message: the exchange is over, say `text`

The exchange never sees the directory: the credential look-up is the adapter's, so it stays
testable without sockets.  A look-up always returns keys (made-up ones for an unknown user, by
the directory), so what the client sees does not tell users apart.  SCRAM's server-final
message goes out as a last challenge, answered by an empty message, then the verdict (RFC 4954
§4, RFC 3501 §6.2.2, RFC 5034 §4 carry no data with success).

SCRAM's messages and proof (RFC 5802 §5, §7) are checked here; `scramp` derives the keys
(SASLprep, Hi) and SASLpreps the user name.  Its own server cannot be the exchange: it refuses an
authorization identity, which GNU SASL's clients (mutt, msmtp) always send ("n,a=user,").  As
with PLAIN, the authzid must be empty or the login itself.  Channel binding:
SCRAM-SHA-256-PLUS is not offered; gs2 flags "n" and "y" are accepted, "p=" is refused
(RFC 5802 §6).  Every message is bounded (`MAX_MESSAGE`).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from scramp import ScramException, ScramMechanism
from scramp.utils import saslprep

from .sansio import Authenticate

MECHANISMS = ("PLAIN", "LOGIN", "SCRAM-SHA-256")
MAX_MESSAGE = 2048                  # decoded octets in one client message: ample for each mechanism
SCRAM_ITERATIONS = 4096             # RFC 7677 §4: the minimum
SCRAM_SALT = 16                     # octets, as RFC 7677's example and Dovecot (a made-up salt has it too)
LOGIN_PROMPTS = (b"Username:", b"Password:")     # what Cyrus SASL (Postfix) and Dovecot send
_SCRAM = ScramMechanism("SCRAM-SHA-256")


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send `data` to the client (base64 in the protocol's continuation form)."""
    data: bytes


@dataclass(frozen=True, slots=True)
class SaslFailure:
    """The exchange is over: the client's message was malformed (`authorization`: only its
    authorization identity is at fault)."""
    text: str
    authorization: bool = False


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """SCRAM's stored credentials of a login (RFC 5802 §3), never the password; `account` is the
    address they belong to, None for the made-up keys of an unknown or disabled login."""
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes
    account: str | None


@dataclass(frozen=True, slots=True)
class ScramLookup:
    """An event: give the exchange the SCRAM credentials of `login` (conn.scram_credentials)."""
    login: str


Step = Challenge | ScramLookup | Authenticate | SaslFailure


def scram_keys(password: str, salt: bytes | None = None,
               iterations: int = SCRAM_ITERATIONS) -> tuple[bytes, int, bytes, bytes]:
    """(salt, iterations, StoredKey, ServerKey) of `password` (a new random salt if none)."""
    salt, stored_key, server_key, iterations = _SCRAM.make_auth_info(password, iterations,
                                                                     salt or secrets.token_bytes(SCRAM_SALT))
    return salt, iterations, stored_key, server_key


def parse_plain(data: bytes) -> tuple[str, str] | SaslFailure:
    """`authzid NUL authcid NUL passwd` to (authcid, passwd); the authzid must be empty or the login."""
    fields = data.split(b"\x00")
    if len(fields) != 3 or not fields[1]:
        return SaslFailure("Malformed PLAIN response (RFC 4616: authzid NUL authcid NUL passwd)")
    try:
        authzid, authcid, password = (f.decode("utf-8") for f in fields)
    except UnicodeDecodeError:
        return SaslFailure("Invalid UTF-8 in PLAIN response")
    if authzid and authzid.lower() != authcid.lower():
        return SaslFailure("Authorization identity must be empty or the login itself", authorization=True)
    return authcid, password


def _sasl_name(value: str) -> str | None:
    """A saslname unescaped (RFC 5802 §5.1: "=2C" is ",", "=3D" is "="), None if malformed."""
    if value.replace("=2C", "").replace("=3D", "").count("="):
        return None
    return value.replace("=2C", ",").replace("=3D", "=")


def _printable_nonce(value: str) -> bool:
    return bool(value) and all(0x21 <= ord(c) <= 0x7E and c != "," for c in value)


class SaslExchange:
    """One server-side SASL exchange; `mechanism` is one of MECHANISMS (upper case)."""

    def __init__(self, mechanism: str, *, nonce: str | None = None) -> None:
        if mechanism not in MECHANISMS:
            raise ValueError(f"unsupported SASL mechanism {mechanism!r}")
        self.mechanism = mechanism
        self.login: str | None = None         # once the client has said it
        self._server_nonce = nonce or secrets.token_urlsafe(24)    # tests: RFC 7677's vector
        self._gs2 = self._bare = self._nonce = self._server_first = ""
        self._keys: ScramCredentials | None = None
        self._final_sent = False
        self._done = False

    def start(self, initial: bytes | None) -> Step:
        """The exchange's first step: the initial response if the client sent one, else None."""
        if initial is not None:
            return self.respond(initial)
        if self.mechanism == "LOGIN":
            return Challenge(LOGIN_PROMPTS[0])
        return Challenge(b"")                 # PLAIN and SCRAM: the client speaks first

    def respond(self, message: bytes) -> Step:
        """The client's next message, decoded from base64."""
        if self._done or self._bare and self._keys is None:
            raise RuntimeError("the SASL exchange expects no client message now")
        if len(message) > MAX_MESSAGE:
            return self._fail(f"SASL message too long (at most {MAX_MESSAGE} octets decoded)")
        if self.mechanism == "PLAIN":
            parsed = parse_plain(message)
            if isinstance(parsed, SaslFailure):
                return self._fail(parsed.text, parsed.authorization)
            self.login = parsed[0]
            return self._verdict(parsed[1])
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail(f"Invalid UTF-8 in {self.mechanism} response")
        if self.mechanism == "LOGIN":
            if self.login is None:
                self.login = text
                return Challenge(LOGIN_PROMPTS[1])
            return self._verdict(text)
        if not self._bare:
            return self._client_first(text)
        if not self._final_sent:
            return self._client_final(text)
        if text:
            return self._fail("SCRAM-SHA-256: expected an empty response after the server's final message")
        return self._proven(self._keys.account if self._keys else None)

    def credentials(self, found: ScramCredentials) -> Step:
        """The answer to ScramLookup: the server-first message (RFC 5802 §5.1)."""
        if self.mechanism != "SCRAM-SHA-256" or not self._bare or self._keys is not None:
            raise RuntimeError("no ScramLookup is waiting for credentials")
        self._keys = found
        self._nonce += self._server_nonce
        salt = binascii.b2a_base64(found.salt, newline=False).decode()
        self._server_first = f"r={self._nonce},s={salt},i={found.iterations}"
        return Challenge(self._server_first.encode())

    # ---- SCRAM-SHA-256 (RFC 5802 §7) -----------------------------------------------------------

    def _client_first(self, text: str) -> Step:
        """gs2-header ("n,," "y,," "n,a=authzid,") then n=user,r=nonce[,extensions]."""
        parts = text.split(",", 2)
        if len(parts) != 3:
            return self._fail("SCRAM-SHA-256: malformed client-first message (RFC 5802 §7)")
        flag, authzid, bare = parts
        if flag.startswith("p="):
            return self._fail("SCRAM-SHA-256: channel binding is not supported (SCRAM-SHA-256-PLUS is not offered)")
        if flag not in ("n", "y"):
            return self._fail("SCRAM-SHA-256: the gs2 header starts with n, y or p= (RFC 5802 §7)")
        attrs = bare.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            return self._fail("SCRAM-SHA-256: client-first message is n=user,r=nonce (RFC 5802 §5.1)")
        name, nonce = _sasl_name(attrs[0][2:]), attrs[1][2:]
        if not name or not _printable_nonce(nonce):
            return self._fail("SCRAM-SHA-256: malformed user name or nonce (RFC 5802 §5.1)")
        try:
            login = saslprep(name)
        except ScramException as e:
            return self._fail(f"SCRAM-SHA-256: the user name is not valid SASLprep: {e}")
        if authzid:
            wanted = _sasl_name(authzid[2:]) if authzid.startswith("a=") else None
            if wanted is None or wanted.lower() != login.lower():
                return self._fail("Authorization identity must be empty or the login itself", authorization=True)
        self._gs2, self._bare, self._nonce, self.login = f"{flag},{authzid},", bare, nonce, login
        return ScramLookup(login)

    def _client_final(self, text: str) -> Step:
        """c=base64(gs2-header),r=nonce[,extensions],p=proof: the proof checked against StoredKey."""
        attrs = text.split(",")
        keys = self._keys
        assert keys is not None
        if len(attrs) < 3 or not attrs[0].startswith("c=") or not attrs[1].startswith("r=") \
                or not attrs[-1].startswith("p="):
            return self._fail("SCRAM-SHA-256: client-final message is c=...,r=...,p=... (RFC 5802 §5.1)")
        try:
            binding = binascii.a2b_base64(attrs[0][2:], strict_mode=True)
            proof = binascii.a2b_base64(attrs[-1][2:], strict_mode=True)
        except binascii.Error:
            return self._fail("SCRAM-SHA-256: invalid base64 in the client-final message")
        if binding != self._gs2.encode():
            return self._fail("SCRAM-SHA-256: the channel binding (c=) does not repeat the gs2 header")
        if attrs[1][2:] != self._nonce:
            return self._fail("SCRAM-SHA-256: the nonce (r=) is not the one the server sent")
        auth_message = ",".join((self._bare, self._server_first, text[:text.rindex(",p=")])).encode()
        signature = hmac.digest(keys.stored_key, auth_message, "sha256")
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if len(proof) != len(signature) or not hmac.compare_digest(hashlib.sha256(client_key).digest(),
                                                                  keys.stored_key):
            return self._proven(None)                 # a wrong password: a failed login, not a malformed one
        self._final_sent = True
        verifier = hmac.digest(keys.server_key, auth_message, "sha256")
        return Challenge(b"v=" + binascii.b2a_base64(verifier, newline=False))

    # ---- the end -----------------------------------------------------------------------------------

    def _verdict(self, password: str) -> Authenticate:
        self._done = True
        assert self.login is not None
        return Authenticate(self.login, password, self.mechanism)

    def _proven(self, account: str | None) -> Authenticate:
        self._done = True
        assert self.login is not None
        return Authenticate(self.login, None, self.mechanism, proven=account)

    def _fail(self, text: str, authorization: bool = False) -> SaslFailure:
        self._done = True
        return SaslFailure(text, authorization)
