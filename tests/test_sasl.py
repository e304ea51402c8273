"""The sans-IO SASL exchange (base/sasl.py) fed bytes: PLAIN, LOGIN and SCRAM-SHA-256, with RFC
7677's test vector and scramp's client as the counterpart; no sockets."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from scramp import ScramClient

from maillab.base.sansio import Authenticate
from maillab.base.sasl import (LOGIN_PROMPTS, MAX_MESSAGE, Challenge, SaslExchange, SaslFailure, ScramCredentials,
                               ScramLookup)
from sasl_support import keys

# RFC 7677 §3: user "user", password "pencil"
VECTOR_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
VECTOR_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
VECTOR_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
VECTOR_SERVER_FIRST = (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                       b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
VECTOR_CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                       b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
VECTOR_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_plain_with_and_without_initial_response():
    x = SaslExchange("PLAIN")
    assert x.start(None) == Challenge(b"")
    assert x.respond(b"\0santa@northpole.org\0maillab") == Authenticate("santa@northpole.org", "maillab", "PLAIN")
    assert SaslExchange("PLAIN").start(b"santa\0santa\0pw") == Authenticate("santa", "pw", "PLAIN")


@pytest.mark.parametrize("message, authorization", [(b"no-nuls", False), (b"\0\0pw", False),
                                                    (b"\0u\xff\0pw", False), (b"other\0santa\0pw", True)])
def test_plain_malformed(message, authorization):
    step = SaslExchange("PLAIN").start(message)
    assert isinstance(step, SaslFailure) and step.authorization is authorization


def test_login_prompts_then_the_password():
    x = SaslExchange("LOGIN")
    assert x.start(None) == Challenge(LOGIN_PROMPTS[0])
    assert x.respond(b"santa@northpole.org") == Challenge(b"Password:")
    assert x.respond(b"maillab") == Authenticate("santa@northpole.org", "maillab", "LOGIN")
    x = SaslExchange("LOGIN")                       # RFC 4954 §4: the user name as initial response
    assert x.start(b"santa") == Challenge(b"Password:")
    assert isinstance(x.respond(b"\xff\xfe"), SaslFailure)


def test_messages_are_bounded():
    step = SaslExchange("PLAIN").start(b"\0u\0" + b"p" * MAX_MESSAGE)
    assert isinstance(step, SaslFailure) and "too long" in step.text


def test_scram_rfc7677_vector():
    x = SaslExchange("SCRAM-SHA-256", nonce=VECTOR_SERVER_NONCE)
    assert x.start(None) == Challenge(b"")
    assert x.respond(VECTOR_CLIENT_FIRST) == ScramLookup("user")
    assert x.credentials(keys("pencil", "user@lab", VECTOR_SALT)) == Challenge(VECTOR_SERVER_FIRST)
    assert x.respond(VECTOR_CLIENT_FINAL) == Challenge(VECTOR_SERVER_FINAL)
    assert x.respond(b"") == Authenticate("user", None, "SCRAM-SHA-256", proven="user@lab")


def run_scram(client: ScramClient, found: ScramCredentials, gs2: str | None = None) -> Authenticate | SaslFailure:
    """A whole exchange against scramp's client; `gs2` replaces the client's gs2 header."""
    x = SaslExchange("SCRAM-SHA-256")
    first = client.get_client_first()
    if gs2 is not None:
        first = gs2 + first.split(",", 2)[2]
    step = x.start(first.encode())                    # SASL-IR
    if isinstance(step, SaslFailure):
        return step
    assert isinstance(step, ScramLookup)
    server_first = x.credentials(found)
    assert isinstance(server_first, Challenge)
    client.set_server_first(server_first.data.decode())
    final = x.respond(client.get_client_final().encode())
    if isinstance(final, Authenticate):
        return final
    assert isinstance(final, Challenge)
    client.set_server_final(final.data.decode())          # raises unless the server knew the keys
    last = x.respond(b"")
    assert isinstance(last, Authenticate)
    return last


def test_scram_with_scramps_client():
    ok = run_scram(ScramClient(["SCRAM-SHA-256"], "mafudge@syr.edu", "maillab"), keys("maillab", "user@lab"))
    assert ok == Authenticate("mafudge@syr.edu", None, "SCRAM-SHA-256", proven="user@lab")


def test_scram_wrong_password_is_a_failed_login_not_a_malformed_message():
    wrong = run_scram(ScramClient(["SCRAM-SHA-256"], "mafudge@syr.edu", "nope"), keys("maillab", "user@lab"))
    assert wrong == Authenticate("mafudge@syr.edu", None, "SCRAM-SHA-256", proven=None)


def test_scram_unknown_user_keys_never_prove():
    assert run_scram(ScramClient(["SCRAM-SHA-256"], "nobody@syr.edu", "x"), keys("", None)).proven is None


def hand_client(x: SaslExchange, gs2: str, user: str, password: str) -> Authenticate | Challenge | SaslFailure:
    """RFC 5802 §3 by hand, for a gs2 header scramp's client does not send ("y,,")."""
    bare = f"n={user},r=cnonce"
    assert isinstance(x.start(f"{gs2}{bare}".encode()), ScramLookup)
    first = x.credentials(keys(password, "user@lab"))
    assert isinstance(first, Challenge)
    fields = dict(f.split("=", 1) for f in first.data.decode().split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c={base64.b64encode(gs2.encode()).decode()},r={fields['r']}"
    signature = hmac.digest(hashlib.sha256(client_key).digest(),
                            f"{bare},{first.data.decode()},{without_proof}".encode(), "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    return x.respond(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())


def test_scram_gs2_headers():
    assert isinstance(hand_client(SaslExchange("SCRAM-SHA-256"), "y,,", "u", "pw"), Challenge)   # "y": could bind
    assert isinstance(hand_client(SaslExchange("SCRAM-SHA-256"), "n,,", "u", "pw"), Challenge)
    assert isinstance(hand_client(SaslExchange("SCRAM-SHA-256"), "n,a=U,", "u", "pw"), Challenge)  # GNU SASL's
    refused = run_scram(ScramClient(["SCRAM-SHA-256"], "u", "pw"), keys("pw", "user@lab"), gs2="p=tls-unique,,")
    assert isinstance(refused, SaslFailure) and "channel binding" in refused.text
    authz = run_scram(ScramClient(["SCRAM-SHA-256"], "u", "pw"), keys("pw", "user@lab"), gs2="n,a=other,")
    assert isinstance(authz, SaslFailure) and authz.authorization


@pytest.mark.parametrize("message", [b"garbage", b"n,,r=abc", b"n,,n=u", b"x,,n=u,r=abc", b"\xff", b"n,,n=a=b,r=x",
                                     b"n,,m=ext,n=u,r=abc", b"n,,n=u,r=a b"])
def test_scram_malformed_client_first(message):
    assert isinstance(SaslExchange("SCRAM-SHA-256").start(message), SaslFailure)


def test_scram_malformed_client_final_and_a_non_empty_last_message():
    x = SaslExchange("SCRAM-SHA-256")
    assert isinstance(x.start(b"n,,n=u,r=abc"), ScramLookup)
    assert isinstance(x.credentials(keys("pw", "user@lab")), Challenge)
    assert isinstance(x.respond(b"c=biws,r=wrong-nonce,p=AAAA"), SaslFailure)
    client = ScramClient(["SCRAM-SHA-256"], "u", "pw")
    x = SaslExchange("SCRAM-SHA-256")
    x.start(client.get_client_first().encode())
    client.set_server_first(x.credentials(keys("pw", "user@lab")).data.decode())
    assert isinstance(x.respond(client.get_client_final().encode()), Challenge)
    assert isinstance(x.respond(b"more"), SaslFailure)


def test_a_message_while_the_lookup_waits_is_the_protocols_bug():
    x = SaslExchange("SCRAM-SHA-256")
    x.start(b"n,,n=u,r=abc")
    with pytest.raises(RuntimeError):
        x.respond(b"c=biws")
