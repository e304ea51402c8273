"""Mailbox names: modified UTF-7 (RFC 3501 §5.1.3) and the name ↔ folder mapping.

The store speaks IMAP's wire form of a mailbox name: a string of printable
ASCII in which other characters are written in modified UTF-7
(`&ZeVnLIqe-` is 日本語, `&-` is "&").  `encode_mutf7` and `decode_mutf7`
convert between that form and Unicode; `decode_mutf7` rejects every
non-canonical or broken encoding (bad base64, odd byte counts, lone
surrogates, non-zero padding bits, printable ASCII inside `&...-`, two encoded
runs in a row, an unterminated `&`), because `encode(decode(s)) == s` must hold.

The hierarchy delimiter is "." — the Maildir++ separator on disk, as in
Dovecot's and Courier's default Maildir++ layout — so the IMAP name
`Lists.Python` is the folder `<maildir>/.Lists.Python/` with no escaping, and
`INBOX` is the Maildir root itself.  A name whose first level is INBOX in any
case is written `INBOX` (RFC 3501 §5.1).

Invariants of `check_name` (every name reaching the file system passed it):
non-empty levels (so no `..`, no leading or trailing "."), no "/" (the disk's
separator), no NUL or other control characters, no `*` or `%` (LIST
wildcards), valid canonical modified UTF-7, at most `MAX_NAME` octets; hence
`folder_dirname(name)` is always one path component starting with "." that
stays inside the user's Maildir.
"""

from __future__ import annotations

import base64
import binascii

from .errors import MailboxNameError

DELIMITER = "."
INBOX = "INBOX"
MAX_NAME = 200          # octets of the wire name; ".<name>" must fit a 255-octet file name

_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
_FORBIDDEN = frozenset("/*%")


def _is_printable(ch: str) -> bool:
    return "\x20" <= ch <= "\x7e"


def _b64(run: str) -> str:
    raw = run.encode("utf-16-be", "surrogatepass")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode_mutf7(text: str) -> str:
    """Unicode → modified UTF-7 (RFC 3501 §5.1.3)."""
    out: list[str] = []
    run: list[str] = []
    for ch in text:
        if _is_printable(ch):
            if run:
                out.append("&" + _b64("".join(run)) + "-")
                run.clear()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append("&" + _b64("".join(run)) + "-")
    return "".join(out)


def decode_mutf7(name: str) -> str:
    """Modified UTF-7 → Unicode; `MailboxNameError` on any invalid or non-canonical form."""
    out: list[str] = []
    i, n = 0, len(name)
    while i < n:
        ch = name[i]
        if not _is_printable(ch):
            raise MailboxNameError("mailbox name must be 7-bit printable (modified UTF-7)")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise MailboxNameError("invalid modified UTF-7 in mailbox name: unterminated '&'")
        body = name[i + 1:end]
        if not body:
            out.append("&")
        else:
            out.append(_decode_run(body))
        i = end + 1
    text = "".join(out)
    if encode_mutf7(text) != name:
        raise MailboxNameError("invalid modified UTF-7 in mailbox name: not in canonical form")
    return text


def _decode_run(body: str) -> str:
    if not all(ord(c) < 128 and ord(c) in _B64 for c in body) or len(body) % 4 == 1:
        raise MailboxNameError("invalid modified UTF-7 in mailbox name: bad base64")
    std = body.replace(",", "/")
    try:
        raw = base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise MailboxNameError("invalid modified UTF-7 in mailbox name: bad base64") from None
    if len(raw) % 2:
        raise MailboxNameError("invalid modified UTF-7 in mailbox name: odd number of octets")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError:
        raise MailboxNameError("invalid modified UTF-7 in mailbox name: broken UTF-16") from None
    if any(_is_printable(c) for c in text):
        raise MailboxNameError("invalid modified UTF-7 in mailbox name: encoded printable ASCII")
    return text


def check_name(name: str, *, trailing_delimiter_ok: bool = False) -> str:
    """Validate a wire-form mailbox name and return its normal form (INBOX upper-cased).

    `trailing_delimiter_ok` drops one trailing "." (CREATE "foo." declares a
    parent, RFC 3501 §6.3.3).  Raises `MailboxNameError` with a one-line reason.
    """
    if not isinstance(name, str) or not name:
        raise MailboxNameError("empty mailbox name")
    if trailing_delimiter_ok and name.endswith(DELIMITER) and len(name) > 1:
        name = name[:-1]
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:
        raise MailboxNameError(f"mailbox name longer than {MAX_NAME} octets")
    if "\x00" in name:
        raise MailboxNameError("NUL in mailbox name")
    text = decode_mutf7(name)
    for ch in text:
        if ord(ch) < 0x20 or 0x7f <= ord(ch) < 0xa0:
            raise MailboxNameError("control character in mailbox name")
        if ch in _FORBIDDEN:
            raise MailboxNameError(f"character {ch!r} is not allowed in mailbox names")
    levels = name.split(DELIMITER)
    if any(level == "" for level in levels):
        raise MailboxNameError("empty level in mailbox name (leading, trailing or doubled '.')")
    if levels[0].upper() == INBOX:
        levels[0] = INBOX
    return DELIMITER.join(levels)


def is_inbox(name: str) -> bool:
    return name == INBOX


def folder_dirname(name: str) -> str | None:
    """The directory of a checked name inside the Maildir root (None for INBOX, the root)."""
    return None if name == INBOX else "." + name


def name_from_dirname(dirname: str) -> str | None:
    """The mailbox name of a Maildir++ folder directory, or None if it is not a valid one."""
    if not dirname.startswith(".") or dirname in (".", ".."):
        return None
    try:
        name = check_name(dirname[1:])
    except MailboxNameError:
        return None
    return name if name != INBOX and folder_dirname(name) == dirname else None


def parent_names(name: str) -> list[str]:
    """The superior names of `name`, outermost first: "a.b.c" → ["a", "a.b"]."""
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels))]
