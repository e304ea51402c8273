"""MAIL FROM / RCPT TO paths: our fast path parses exactly as aiosmtpd's RFC 5322 parser does."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from maillab.smtp.server import LabSMTP


def _parsers() -> tuple[SMTP, SMTP]:
    ours, theirs = LabSMTP.__new__(LabSMTP), SMTP.__new__(SMTP)
    ours.local_part_limit = theirs.local_part_limit = 0
    return ours, theirs


@pytest.mark.parametrize("arg", [
    "<mafudge@syr.edu>", " <santa@northpole.org>", "<a@b.c> SIZE=1024 BODY=8BITMIME", "<a@b.c>  SMTPUTF8",
    "<first.last+tag@mail.example.org>", '<"quoted local"@syr.edu>', "<a..b@c.d>", "<@route:a@b.c>",
    "<a@b.c>junk", "a@b.c", "<>", "<a@b.c", "<a@-b.c>", "<a b@c.d>", "<a@b.c> x\x00y", "<a@b..c>", "<a@b.c.>",
])
def test_known_paths_parse_like_aiosmtpd(arg: str) -> None:
    ours, theirs = _parsers()
    assert LabSMTP._getaddr(ours, arg) == SMTP._getaddr(theirs, arg)


_atom = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~-.", min_size=1, max_size=12)
_label = st.text(alphabet="abz09-.", min_size=1, max_size=12)
_rest = st.sampled_from(["", " SIZE=10", "  BODY=8BITMIME SMTPUTF8", "x", " "])


@settings(max_examples=1000)
@given(local=_atom, domain=_label, rest=_rest, lead=st.sampled_from(["", " "]))
def test_generated_paths_parse_like_aiosmtpd(local: str, domain: str, rest: str, lead: str) -> None:
    ours, theirs = _parsers()
    arg = f"{lead}<{local}@{domain}>{rest}"
    assert LabSMTP._getaddr(ours, arg) == SMTP._getaddr(theirs, arg)
