"""The MUA's messages: what `compose` writes reads back byte-exact with Python's email parser, and
`reading` shows what a reading pane shows (text, HTML as text, the MIME tree, attachments saved
safely)."""

from __future__ import annotations

import email
import email.policy

import pytest

from maillab.mua.compose import Attachment, Draft, build, envelope, flow, forward, reply
from maillab.mua.reading import attachment, headers, html_text, mime_tree, save_attachment, text

EVERY_OCTET = bytes(range(256)) * 7


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_utf8_header_and_a_non_ascii_attachment_round_trip_byte_exact():
    draft = Draft("Père Noël <santa@northpole.org>", to=("Märta Fudge <mafudge@syr.edu>",),
                  subject="Grüße vom Nordpol ❄ — 2026", body="Frohe Weihnachten!\n",
                  attachments=(Attachment("Wunschzettel ä.bin", EVERY_OCTET),))
    raw = build(draft)
    assert raw.isascii() and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    m = parsed(raw)
    assert m["Subject"] == "Grüße vom Nordpol ❄ — 2026"
    assert m["From"].addresses[0].display_name == "Père Noël"
    assert m["To"].addresses[0].addr_spec == "mafudge@syr.edu"
    assert m["Message-ID"].endswith("@northpole.org>") and m["Date"] and m["MIME-Version"] == "1.0"
    [part] = list(m.iter_attachments())
    assert part.get_filename() == "Wunschzettel ä.bin" and part["Content-Transfer-Encoding"] == "base64"
    assert part.get_content() == EVERY_OCTET
    assert text(raw) == "Frohe Weihnachten!\n"


def test_bcc_is_in_the_envelope_and_never_in_the_header():
    draft = Draft("santa@northpole.org", to=("mafudge@syr.edu",), cc=("TAJorgen@syr.edu", "mafudge@SYR.edu"),
                  bcc=("relstad@syr.edu",), subject="s", body="b")
    raw = build(draft)
    assert b"relstad" not in raw and b"Bcc" not in raw
    assert envelope(draft) == ("santa@northpole.org", ("mafudge@syr.edu", "TAJorgen@syr.edu", "relstad@syr.edu"))


@pytest.mark.parametrize("field", ["subject", "to", "header"])
def test_a_line_break_in_a_header_field_is_refused(field):
    evil = "x\r\nBcc: victim@example.com"
    draft = Draft("santa@northpole.org", to=(evil if field == "to" else "a@b.test",),
                  subject=evil if field == "subject" else "s",
                  headers=(("X-Evil", evil),) if field == "header" else ())
    with pytest.raises(ValueError, match="header injection|not a mail address"):
        build(draft)


def test_format_flowed_round_trips_long_lines_and_stuffed_ones():
    body = "word " * 40 + "end\n>not a quote\nFrom here\n"
    raw = build(Draft("santa@northpole.org", to=("a@b.test",), subject="s", body=body, flowed=True))
    m = parsed(raw)
    assert m.get_content_type() == "text/plain" and m.get_param("format") == "flowed"
    wire = m.get_content().replace("\r\n", "\n")
    assert max(len(line) for line in wire.split("\n")) <= 78
    assert "\n >not a quote\n" in wire and "\n From here\n" in wire
    assert text(raw) == ("word " * 40).rstrip(" ") + " end\n>not a quote\nFrom here\n"
    assert flow("short\n") == "short\n"


def test_reply_all_addresses_subject_and_references():
    original = build(Draft("Santa <santa@northpole.org>", to=("mafudge@syr.edu", "bob@luxsci.net"),
                           cc=("tajorgen@syr.edu",), subject="Lists", body="Line one\nLine two\n",
                           references=("<a@x>",)), message_id="<m1@northpole.org>")
    r = reply(original, "mafudge@syr.edu")
    assert r.to == ("Santa <santa@northpole.org>",) and r.cc == ()
    assert r.subject == "Re: Lists" and r.in_reply_to == "<m1@northpole.org>"
    assert r.references == ("<a@x>", "<m1@northpole.org>")
    assert "Santa wrote:\n> Line one\n> Line two\n" in r.body
    everyone = reply(original, "MAFUDGE@syr.edu", to_all=True)
    assert everyone.cc == ("bob@luxsci.net", "tajorgen@syr.edu")
    again = reply(build(r), "santa@northpole.org")
    assert again.subject == "Re: Lists"                   # not "Re: Re: Lists"
    assert again.references[:2] == r.references and len(again.references) == 3


def test_forward_carries_the_attachments_and_the_text():
    original = build(Draft("santa@northpole.org", to=("mafudge@syr.edu",), subject="Photo", body="See it.\n",
                           attachments=(Attachment("sled.png", b"\x89PNG fake"),)))
    f = forward(original, "mafudge@syr.edu")
    assert f.subject == "Fwd: Photo" and f.to == ()
    assert "---------- Forwarded message ----------" in f.body and "See it." in f.body
    assert f.attachments == (Attachment("sled.png", b"\x89PNG fake", "image/png"),)


NESTED = (b"From: a@b.test\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/mixed; boundary=OUT\r\n\r\n"
          b"--OUT\r\nContent-Type: multipart/alternative; boundary=ALT\r\n\r\n"
          b"--ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
          b"<html><head><style>p{}</style></head><body><p>Hello <b>world</b> &amp; "
          b"<a href=\"http://syr.edu/\">the campus</a></p><script>x()</script><ul><li>one</li></ul></body></html>\r\n"
          b"--ALT--\r\n"
          b"--OUT\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"../../etc/passwd\"\r\n"
          b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--OUT--\r\n")


def test_html_only_mail_reads_as_text_and_the_tree_has_imap_part_numbers():
    assert text(NESTED) == "Hello world & the campus <http://syr.edu/>\n\n* one\n"
    tree = [(p.path, p.depth, p.content_type, p.filename, p.size) for p in mime_tree(NESTED)]
    assert tree == [("", 0, "multipart/mixed", "", 0), ("1", 1, "multipart/alternative", "", 0),
                    ("1.1", 2, "text/html", "", tree[2][4]), ("2", 1, "application/pdf", "../../etc/passwd", 5)]
    assert attachment(NESTED, "2") == ("../../etc/passwd", b"%PDF-")
    assert headers(NESTED) == [("From", "a@b.test"), ("Subject", "nested")]
    assert ("MIME-Version", "1.0") in headers(NESTED, full=True)
    assert html_text("<p>a</p><p>b</p>") == "a\n\nb\n"


def test_a_saved_attachment_stays_in_its_folder_whatever_its_name(tmp_path):
    first = save_attachment(NESTED, "2", tmp_path)
    second = save_attachment(NESTED, "2", tmp_path)
    assert first == tmp_path / "passwd" and second == tmp_path / "passwd (2)"
    assert first.read_bytes() == b"%PDF-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd", "passwd (2)"]


def test_verdicts_are_read_from_the_topmost_authentication_results_field():
    from maillab.mua.reading import verdicts
    header = (b"Received: from a by smtp1.syr.edu\r\n"
              b"Authentication-Results: smtp1.syr.edu; spf=fail (-all matched)\r\n"
              b"\tsmtp.mailfrom=northpole.org; dkim=none\r\n"
              b"Authentication-Results: forged.example; spf=pass smtp.mailfrom=northpole.org\r\n"
              b"Subject: x\r\n\r\n")
    assert verdicts(header) == ("smtp1.syr.edu", {"spf": "fail", "dkim": "none"})
    assert verdicts(b"Subject: none\r\n\r\n") == ("", {})
