"""SCRAM-SHA-256 from the client's side, for the tests: scramp's client as an auth callback,
one exchange driven line by line in any protocol's continuation form, and stored keys."""

from __future__ import annotations

import base64
from typing import Callable

from scramp import ScramClient

from maillab.base.sasl import ScramCredentials, scram_keys

SCRAM = "SCRAM-SHA-256"


def keys(password: str, account: str | None, salt: bytes | None = None) -> ScramCredentials:
    """What the directory would answer a ScramLookup with (made-up keys when `account` is None)."""
    if account is None:
        return ScramCredentials(bytes(16), 4096, bytes(32), bytes(32), None)
    return ScramCredentials(*scram_keys(password, salt), account)


class ScramAuth:
    """scramp's client as smtplib's and imaplib's auth callback: client-first, client-final, then
    an empty answer once the server's final message proved the server knows the keys."""

    def __init__(self, user: str, password: str) -> None:
        self.client = ScramClient([SCRAM], user, password)
        self.step = 0
        self.verified = False

    def __call__(self, challenge: bytes | None = None) -> str:
        self.step += 1
        if self.step == 1:
            return self.client.get_client_first()
        if self.step == 2:
            assert challenge is not None
            self.client.set_server_first(challenge.decode())
            return self.client.get_client_final()
        assert challenge is not None
        self.client.set_server_final(challenge.decode())     # raises if the signature is wrong
        self.verified = True
        return ""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def scram_dialogue(say: Callable[[str], str], command: str, prefix: str, auth: ScramAuth,
                   initial: bool) -> list[str]:
    """`command` (AUTH SCRAM-SHA-256, ...) and the exchange after it, through `say` (a line out,
    the reply's last line back), with or without an initial response; every reply line seen.
    `prefix` starts a challenge ("334 ", "+ ")."""
    first = b64(auth())
    if initial:
        seen = [say(f"{command} {first}")]
    else:
        seen = [say(command)]
        assert seen[0] == prefix, seen
        seen.append(say(first))
    while seen[-1].startswith(prefix):
        seen.append(say(b64(auth(base64.b64decode(seen[-1][len(prefix):])))))
    return seen
