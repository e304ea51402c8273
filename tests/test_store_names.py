"""Mailbox names: modified UTF-7 (RFC 3501 §5.1.3) and the rules that keep names inside a Maildir."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maillab.store import MailboxNameError, check_name, decode_mutf7, encode_mutf7
from maillab.store.names import folder_dirname, name_from_dirname, parent_names


@pytest.mark.parametrize("text, wire", [
    ("日本語", "&ZeVnLIqe-"),
    ("&", "&-"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),   # the RFC's own example
    ("😀", "&2D3eAA-"),                                           # a surrogate pair
    ("plain", "plain"),
])
def test_known_encodings_round_trip(text, wire):
    assert encode_mutf7(text) == wire
    assert decode_mutf7(wire) == text


@pytest.mark.parametrize("wire", [
    "&",                    # unterminated
    "&ZeVnLIqe",            # unterminated run
    "&AGE-",                # printable ASCII ("a") encoded
    "&ZeVnLIqe-&ZeVnLIqe-",  # two runs in a row (canonical is one)
    "&2D0-",                # a lone high surrogate
    "&A-",                  # impossible base64 length
    "&AG-",                 # an odd number of octets
    "&AOR-",                # non-zero padding bits (canonical: &AOQ-)
    "&U/BTFw-",             # "/" is not modified base64 (it is ",")
    "&Zé-",                 # not base64 at all
    "Entwürfe",             # raw 8-bit: must be encoded
    "a\tb",                 # control character
])
def test_invalid_modified_utf7_is_rejected(wire):
    with pytest.raises(MailboxNameError):
        decode_mutf7(wire)


@given(st.text(max_size=40))
def test_any_text_round_trips(text):
    wire = encode_mutf7(text)
    assert all(" " <= c <= "~" for c in wire)
    assert decode_mutf7(wire) == text


@pytest.mark.parametrize("name", [
    "..", "../x", "a..b", ".hidden", "/etc/passwd", "a/b", "x/../../y", "foo\x00bar", "",
    "*", "a%", "&AAo-",                 # "\n" spelled in modified UTF-7 is still a control character
    "&AC4AL-", "x" * 201, "INBOX.", ".", "~/x",
])
def test_unsafe_names_are_rejected(name):
    with pytest.raises(MailboxNameError):
        check_name(name)


def test_normal_forms():
    assert check_name("inbox") == "INBOX"
    assert check_name("InBoX.Lists") == "INBOX.Lists"
    assert check_name("Lists.inbox") == "Lists.inbox"
    assert check_name("Archive.", trailing_delimiter_ok=True) == "Archive"
    assert check_name("&ZeVnLIqe-.Sub") == "&ZeVnLIqe-.Sub"


@given(st.text(min_size=1, max_size=30))
def test_checked_names_stay_one_component_inside_the_root(text):
    try:
        name = check_name(encode_mutf7(text))
    except MailboxNameError:
        return
    dirname = folder_dirname(name)
    if dirname is None:
        assert name == "INBOX"
        return
    root = Path("/maildir")
    assert "/" not in dirname and dirname.startswith(".") and dirname not in (".", "..")
    assert (root / dirname).parent == root
    assert name_from_dirname(dirname) == name


def test_name_from_dirname_ignores_what_is_not_a_folder():
    for entry in ("cur", "new", "tmp", ".", "..", "..trash-1234", ".INBOX", ".inbox.x", ".a..b",
                  ".Entwürfe"):
        assert name_from_dirname(entry) is None
    assert name_from_dirname(".Lists.Python") == "Lists.Python"
    assert parent_names("a.b.c") == ["a", "a.b"]
