"""SASL PLAIN (RFC 4616) as IMAP and POP3 receive it: the decoded message to (login, password).

Base64 decoding stays with each protocol (their continuation forms differ);
this module checks the message itself and says what is wrong in one line.
"""

from __future__ import annotations


class PlainError(ValueError):
    """A PLAIN message the server refuses; `authorization` when only the authzid is at fault."""

    def __init__(self, text: str, authorization: bool = False) -> None:
        super().__init__(text)
        self.authorization = authorization


def parse_plain(data: bytes) -> tuple[str, str]:
    """`authzid NUL authcid NUL passwd` to (authcid, passwd); the authzid must be empty or the login."""
    fields = data.split(b"\x00")
    if len(fields) != 3 or not fields[1]:
        raise PlainError("Malformed PLAIN response (RFC 4616: authzid NUL authcid NUL passwd)")
    try:
        authzid, authcid, password = (f.decode("utf-8") for f in fields)
    except UnicodeDecodeError:
        raise PlainError("Invalid UTF-8 in PLAIN response") from None
    if authzid and authzid.lower() != authcid.lower():
        raise PlainError("Authorization identity must be empty or the login itself", authorization=True)
    return authcid, password
