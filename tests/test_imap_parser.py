"""The IMAP grammar (maillab.imap.parser): framed commands → Command dataclasses, or ParseError."""

from __future__ import annotations

import calendar

import pytest

from maillab.imap.framing import RawCommand
from maillab.imap.parser import (STAR, Append, Authenticate, Copy, Enable, Expunge, Fetch, FetchItem, Id,
                                 ListArgs, Login, MailboxArg, ParseError, Rename, Search, Section, Select,
                                 SeqSet, Status, Store, parse_command)


def parse(line: bytes, *literals: bytes):
    """A command whose literals follow the `{}` markers in `line`."""
    parts = line.split(b"{}")
    assert len(parts) == len(literals) + 1
    return parse_command(RawCommand(tuple(parts), literals))


def error(line: bytes, *literals: bytes) -> ParseError:
    with pytest.raises(ParseError) as e:
        parse(line, *literals)
    return e.value


def test_tag_name_and_uid_prefix():
    cmd = parse(b"A001 uid fetch 1:* flags")
    assert (cmd.tag, cmd.name, cmd.uid, cmd.label) == ("A001", "FETCH", True, "UID FETCH")
    assert parse(b"x noop").args is None
    assert error(b"x UID SELECT INBOX").text.startswith("UID SELECT is not a UID command")
    assert error(b"x FROB").text == "Unknown command FROB"
    e = error(b"x")
    assert e.text.startswith("Missing command")
    assert error(b"").text == "Empty command line"


def test_login_and_authenticate():
    assert parse(b'a LOGIN "maf\\"udge" {}', b"pa ss").args == Login('maf"udge', "pa ss")
    assert parse(b"a LOGIN bob secret").args == Login("bob", "secret")
    assert parse(b"a AUTHENTICATE plain").args == Authenticate("PLAIN", None)
    assert parse(b"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=").args == Authenticate("PLAIN", b"AGJvYgBzZWNyZXQ=")
    assert error(b"a LOGIN bob").text.startswith("Error in IMAP command LOGIN: Expected a space")


def test_mailbox_arguments():
    assert parse(b"a SELECT inbox").args == Select("INBOX")
    assert parse(b'a EXAMINE "Lists.Python" (CONDSTORE)').args == Select("Lists.Python", True)
    assert parse(b"a CREATE &ZeVnLIqe-").args == MailboxArg("&ZeVnLIqe-")
    assert parse(b"a RENAME a {}", b"b c").args == Rename("a", "b c")
    assert parse(b"a STATUS INBOX (messages UIDNEXT)").args == Status("INBOX", ("MESSAGES", "UIDNEXT"))
    assert error(b"a STATUS INBOX (FOO)").text.startswith("Error in IMAP command STATUS: Unknown status item FOO")
    assert error(b"a SELECT INBOX (QRESYNC)").text.startswith("Error in IMAP command SELECT: Unknown SELECT parameter")


def test_list_forms():
    assert parse(b'a LIST "" *').args == ListArgs("", ("*",))
    assert parse(b"a LIST Lists. %").args == ListArgs("Lists.", ("%",))
    assert parse(b'a LIST (SUBSCRIBED) "" ("INBOX" "Sent*") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))').args \
        == ListArgs("", ("INBOX", "Sent*"), frozenset({"SUBSCRIBED"}), frozenset({"CHILDREN", "STATUS"}),
                    ("MESSAGES", "UNSEEN"))
    assert parse(b'a LSUB "" *').args == ListArgs("", ("*",), frozenset({"SUBSCRIBED", "LSUB"}))


def test_append_with_flags_and_date():
    cmd = parse(b'a APPEND Sent (\\Seen $Label) "05-Mar-2024 10:00:00 +0100" {}', b"Subject: x\r\n\r\nhi\r\n")
    when = calendar.timegm((2024, 3, 5, 9, 0, 0))
    assert cmd.args == Append("Sent", ("\\Seen", "$Label"), when, b"Subject: x\r\n\r\nhi\r\n")
    assert parse(b"a APPEND INBOX {}", b"x").args == Append("INBOX", (), None, b"x")
    assert error(b"a APPEND INBOX hello").text.startswith(
        "Error in IMAP command APPEND: APPEND needs the message as a literal")
    assert error(b'a APPEND INBOX "31-Feb-2024 25:00:00 +0000" {}', b"x").text.startswith(
        "Error in IMAP command APPEND: Invalid date")


def test_sequence_sets_stay_ranges():
    assert parse(b"a FETCH 1:4294967295 FLAGS").args.seqset == SeqSet(((1, 4294967295),))
    assert parse(b"a FETCH 5,1:3,*,7:* UID").args.seqset == SeqSet(((5, 5), (1, 3), (STAR, STAR), (7, STAR)))
    assert str(SeqSet(((1, 3), (STAR, STAR)))) == "1:3,*"
    assert "Number out of range: 4294967296" in error(b"a FETCH 4294967296 FLAGS").text
    assert "Invalid a message number or UID: 0" in error(b"a FETCH 0 FLAGS").text
    assert "SEARCHRES" in error(b"a FETCH $ FLAGS").text


def test_fetch_items_macros_sections_and_partials():
    f = parse(b"a FETCH 1 ALL").args
    assert [i.name for i in f.items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    f = parse(b"a FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100> BODY[1.2.MIME] BODY[] RFC822)").args
    assert f.items == (
        FetchItem("UID", "UID"),
        FetchItem("BODY[]", "BODY[HEADER.FIELDS (FROM SUBJECT)]<0>", Section((), "HEADER.FIELDS", ("from", "subject")),
                  (0, 100), peek=True),
        FetchItem("BODY[]", "BODY[1.2.MIME]", Section((1, 2), "MIME"), None, peek=False),
        FetchItem("BODY[]", "BODY[]", Section(), None, peek=False),
        FetchItem("RFC822", "RFC822", peek=False))
    assert parse(b"a FETCH 1 (FLAGS) (CHANGEDSINCE 12345)").args == Fetch(SeqSet(((1, 1),)),
                                                                         (FetchItem("FLAGS", "FLAGS"),), 12345)
    assert error(b"a FETCH 1 BODY[MIME]").text.startswith("Error in IMAP command FETCH: MIME needs a part number")
    assert error(b"a FETCH 1 (FLAGS BOGUS)").text.startswith("Error in IMAP command FETCH: Unknown FETCH item BOGUS")
    assert "QRESYNC" in error(b"a FETCH 1 FLAGS (VANISHED)").text


def test_store_forms():
    assert parse(b"a STORE 1:3 +FLAGS.SILENT (\\Deleted \\Seen)").args == \
        Store(SeqSet(((1, 3),)), "add", True, ("\\Deleted", "\\Seen"))
    assert parse(b"a STORE 2 -flags \\Seen").args == Store(SeqSet(((2, 2),)), "remove", False, ("\\Seen",))
    assert parse(b"a STORE 2 (UNCHANGEDSINCE 7) FLAGS ()").args == Store(SeqSet(((2, 2),)), "set", False, (), 7)
    assert error(b"a STORE 1 +FLAGS (\\*)").text.startswith("Error in IMAP command STORE: \\* is not a flag")
    assert error(b"a STORE 1 LABELS (x)").text.startswith("Error in IMAP command STORE: Unknown STORE item LABELS")


def test_search_key_trees():
    s = parse(b'a SEARCH CHARSET utf-8 UNSEEN OR FROM santa (SUBJECT "hi there" NOT LARGER 100) SINCE 1-Feb-2024').args
    assert s == Search("UTF-8", ("and", (
        ("flag", "\\Seen", False),
        ("or", ("header", "from", "santa"), ("and", (("header", "subject", "hi there"),
                                                     ("not", ("size", True, 100))))),
        ("date", "since", (2024, 2, 1), False))))
    assert parse(b"a UID SEARCH UID 1:* MODSEQ 5").args.key == ("and", (("uid", SeqSet(((1, STAR),))),
                                                                       ("modseq", 5)))
    assert parse(b"a SEARCH HEADER X-Spam yes 1:3 KEYWORD $Junk").args.key == (
        "and", (("header", "x-spam", "yes"), ("seq", SeqSet(((1, 3),))), ("flag", "$Junk", True)))
    assert parse(b"a SEARCH SUBJECT {}", "caf\u00e9".encode()).args.key == ("header", "subject", "caf\u00e9")
    assert error(b"a SEARCH FOO").text == "Error in IMAP command SEARCH: Unknown search key FOO"
    assert "nested too deep" in error(b"a SEARCH " + b"NOT " * 100 + b"ALL").text


def test_copy_move_expunge_enable_id():
    assert parse(b"a UID MOVE 1:2 Trash").args == Copy(SeqSet(((1, 2),)), "Trash")
    assert parse(b"a EXPUNGE").args == Expunge(None)
    assert parse(b"a UID EXPUNGE 3,5").args == Expunge(SeqSet(((3, 3), (5, 5))))
    assert parse(b"a ENABLE condstore").args == Enable(("CONDSTORE",))
    assert parse(b'a ID ("name" "x" "os" NIL)').args == Id((("name", "x"), ("os", None)))
    assert error(b'a ID ("name")').text.startswith("Error in IMAP command ID: ID takes up to 30 field-value pairs")


def test_errors_carry_the_tag_and_nul_is_refused():
    e = error(b"t9 SELECT")
    assert e.tag == "t9"
    assert error(b"t1 SELECT IN\0BOX").text == "NUL octet in command"
    assert error(b'a SELECT "unterminated').text.startswith("Error in IMAP command SELECT: Unterminated quoted string")
    assert error(b"a NOOP extra").text.startswith("Error in IMAP command NOOP: Unexpected extra arguments")
