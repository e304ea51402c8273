"""MAIL FROM / RCPT TO paths (smtp/paths.py): the RFC 5321 §4.1.2 grammar, with aiosmtpd's parser
as a differential oracle for the everyday paths and every intended difference listed."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from maillab.smtp.paths import PathError, parse_path


def aiosmtpd_address(arg: str) -> str | None:
    theirs = SMTP.__new__(SMTP)
    theirs.local_part_limit = 0
    return theirs._getaddr(arg)[0]


_atom = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=8)
_local = st.lists(_atom, min_size=1, max_size=3).map(".".join)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
_domain = st.lists(_label, min_size=1, max_size=3).map(".".join)


@settings(max_examples=500)
@given(local=_local, domain=_domain, rest=st.sampled_from(["", " SIZE=10", " BODY=8BITMIME SMTPUTF8"]),
       lead=st.sampled_from(["", " "]))
def test_well_formed_paths_parse_as_aiosmtpd_parses_them(local, domain, rest, lead):
    arg = f"{lead}<{local}@{domain}>{rest}"
    assert parse_path(arg, forward=True).address == aiosmtpd_address(arg) == f"{local}@{domain}"


# Where we differ from aiosmtpd on purpose, and why.
@pytest.mark.parametrize("arg, ours, why", [
    ("<postmaster>", "postmaster", "RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted"),
    ("<@route.example:a@b.example>", "a@b.example", "RFC 5321 §4.1.1.3: a source route is accepted and ignored"),
    ("<mafudge@syr.edu", None, "RFC 5321 §4.1.2: Path ends with '>'; aiosmtpd took it"),
    ("<x@", None, "unterminated: aiosmtpd raised IndexError (500)"),
    ("<a@[", None, "unterminated address literal: aiosmtpd raised IndexError (500)"),
    ("<a@b.example>junk", None, "RFC 5321 §4.1.2: parameters follow after a space"),
])
def test_intended_differences(arg, ours, why):
    if ours is None:
        with pytest.raises(PathError) as e:
            parse_path(arg, forward=True)
        assert e.value.reply.startswith("501 5.1.")
    else:
        assert parse_path(arg, forward=True).address == ours, why


def test_parameters_come_back_upper_cased_with_their_values():
    path = parse_path("<a@b.example> size=10 SMTPUTF8 body=8BITMIME", forward=False)
    assert path.params == {"SIZE": "10", "SMTPUTF8": None, "BODY": "8BITMIME"}
    assert parse_path("<>", forward=False).address == ""
