"""Message flags: IMAP flags ↔ the Maildir info suffix `:2,<letters>`.

The Maildir spec (cr.yp.to/proto/maildir.html) gives the letters, in ASCII
order in the file name:

    D \\Draft   F \\Flagged   P $Forwarded   R \\Answered   S \\Seen   T \\Deleted

Keywords (RFC 3501 §2.3.2) take the lowercase letters a–z, as Dovecot does; the
letter of each keyword is fixed per user in `maillab-keywords` at the Maildir
root (lines `<index> <keyword>`, index 0 = "a"; the format of Dovecot's
`dovecot-keywords`), so a file keeps its meaning when copied between folders.
Letters we do not know are kept as they are when flags change.

`\\Recent` is a per-session notion (RFC 3501 §2.3.2) that the store neither
stores nor accepts.  Flag names compare case-insensitively; the store hands
out the canonical spelling (`\\Seen`, and a keyword as first recorded).

Invariant: `Keywords` only ever grows (a letter is never reused for another
keyword), and the file is written (temp, fsync, rename) before a letter is used.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable

from ..base.fsutil import write_durable
from .errors import FlagError, KeywordLimit

SEEN, ANSWERED, FLAGGED, DELETED, DRAFT, RECENT = (
    "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")
FORWARDED = "$Forwarded"
SYSTEM_FLAGS: tuple[str, ...] = (ANSWERED, FLAGGED, DELETED, SEEN, DRAFT)

LETTER_OF: dict[str, str] = {DRAFT: "D", FLAGGED: "F", FORWARDED: "P", ANSWERED: "R",
                             SEEN: "S", DELETED: "T"}
FLAG_OF: dict[str, str] = {v: k for k, v in LETTER_OF.items()}
_CANONICAL = {f.lower(): f for f in (*SYSTEM_FLAGS, FORWARDED)}
MAX_KEYWORDS = 26
# RFC 3501 §9: atom-char excludes ( ) { SP CTL % * " \ ] ; a flag keyword is an atom
_ATOM_SPECIALS = frozenset('(){ %*"\\]')


def _valid_keyword(word: str) -> bool:
    return bool(word) and len(word) <= 100 and all(
        0x20 < ord(c) < 0x7f and c not in _ATOM_SPECIALS for c in word)


class Keywords:
    """One user's keyword ↔ letter table, backed by `maillab-keywords`."""

    FILENAME = "maillab-keywords"

    def __init__(self, root: Path) -> None:
        self.path = root / self.FILENAME
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self.version = 0                   # grows with every keyword added
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return
        slots: dict[int, str] = {}
        for line in text.splitlines():
            index, _, word = line.partition(" ")
            if index.isdigit() and int(index) < MAX_KEYWORDS and _valid_keyword(word):
                slots[int(index)] = word
        for i in range(max(slots, default=-1) + 1):
            # a hole (hand-edited file) keeps its letter reserved under a placeholder name
            self._names.append(slots.get(i, f"$maillab-unused-{i}"))
        self._index = {w.lower(): i for i, w in enumerate(self._names)}

    def names(self) -> tuple[str, ...]:
        return tuple(self._names)

    def canonical(self, keyword: str) -> str:
        """The recorded spelling of a keyword (keywords compare case-insensitively)."""
        i = self._index.get(keyword.lower())
        return keyword if i is None else self._names[i]

    def full(self) -> bool:
        return len(self._names) >= MAX_KEYWORDS

    def letter(self, keyword: str, create: bool) -> str | None:
        """The letter of a keyword; with `create`, allot one (KeywordLimit when all 26 are used)."""
        i = self._index.get(keyword.lower())
        if i is None and create:
            with self._lock:
                i = self._index.get(keyword.lower())
                if i is None:
                    if self.full():
                        raise KeywordLimit(f"too many keywords (a Maildir holds {MAX_KEYWORDS})")
                    names = [*self._names, keyword]
                    write_durable(self.path, "".join(f"{n} {w}\n" for n, w in enumerate(names)).encode())
                    self._names = names
                    i = len(names) - 1
                    self._index[keyword.lower()] = i
                    self.version += 1
        return None if i is None else chr(ord("a") + i)

    def keyword(self, letter: str) -> str | None:
        i = ord(letter) - ord("a")
        return self._names[i] if 0 <= i < len(self._names) else None


def normalize_flags(flags: Iterable[str], keywords: Keywords) -> frozenset[str]:
    """Canonical spellings of client-given flags; FlagError for ones that can not be stored."""
    out: set[str] = set()
    for flag in flags:
        canon = _CANONICAL.get(flag.lower())
        if canon is not None:
            out.add(canon)
        elif flag.startswith("\\"):
            what = "\\Recent can not be set by a client" if flag.lower() == "\\recent" else \
                f"unknown system flag {flag}"
            raise FlagError(what)
        elif not _valid_keyword(flag):
            raise FlagError(f"invalid keyword {flag!r}")
        else:
            out.add(keywords.canonical(flag))
    return frozenset(out)


def split_info(filename: str) -> tuple[str, str | None]:
    """Split a Maildir file name into (base, flag letters); None if it has no `:2,` info."""
    base, sep, info = filename.partition(":")
    if not sep:
        return base, None
    if info.startswith("2,"):
        return base, info[2:]
    return base, ""          # experimental info (":1,..."): no flags we can read


def flags_from_letters(letters: str | None, keywords: Keywords) -> frozenset[str]:
    if not letters:
        return frozenset()
    out = set()
    for ch in letters:
        flag = FLAG_OF.get(ch) or (keywords.keyword(ch) if "a" <= ch <= "z" else None)
        if flag is not None:
            out.add(flag)
    return frozenset(out)


def letters_for(flags: Iterable[str], keywords: Keywords, keep: str = "") -> str:
    """The sorted letters for `flags` (keywords must have letters), plus unknown letters of `keep`."""
    letters = set()
    for flag in sorted(flags):              # new keywords get letters in a stable order
        letter = LETTER_OF.get(flag) or keywords.letter(flag, create=True)
        if letter is not None:
            letters.add(letter)
    for ch in keep:
        known = ch in FLAG_OF or ("a" <= ch <= "z" and keywords.keyword(ch) is not None)
        if not known and ch.isalpha():
            letters.add(ch)
    return "".join(sorted(letters))
