"""The mailbox commands of IMAP (RFC 3501 §6.3): SELECT, EXAMINE, CREATE, DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS, APPEND; and CHECK and CLOSE (§6.4.1-2).

Each handler takes the session (`CommandContext`, what it may use of the
`ImapConnection`) and the parsed `Command`, works on the user's store (it
runs inside `ImapConnection.execute()`, so it may block),
writes its untagged responses and returns the text (or response code and
text) of its tagged OK; a failure is an `ImapError` or a store error that
the connection turns into NO or BAD.  Mailbox names are the store's wire
names (modified UTF-7); the store checks them, so `..`, `/`, NUL or broken
modified UTF-7 never reach the file system (NO [CANNOT]).

LIST also takes the RFC 5258 selection options SUBSCRIBED, REMOTE and
SPECIAL-USE and the return options SUBSCRIBED, CHILDREN, SPECIAL-USE and
STATUS (RFC 5819) as a courtesy; special-use attributes (RFC 6154) and
\\HasChildren/\\HasNoChildren (RFC 3348) are always returned.
"""

from __future__ import annotations

import re

from ..store import DELIMITER, INBOX, RECENT, NoSuchMailbox, check_name
from ..store.errors import MailboxNameError
from .command_context import CommandContext, Result
from .parser import Append, Command, ListArgs, MailboxArg, Rename, Select, Status
from .response import Part, astring, bad, no

_LIST_SELECT = frozenset({"SUBSCRIBED", "REMOTE", "SPECIAL-USE"})
_LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})


def select(conn: CommandContext, cmd: Command) -> Result:
    """SELECT and EXAMINE (RFC 3501 §6.3.1-2; RFC 7162 §3.1.8 CONDSTORE parameter)."""
    args: Select = cmd.args
    assert conn.user is not None
    readonly = cmd.name == "EXAMINE"
    if args.condstore:
        conn.enable_condstore()
    if conn.view is not None:                   # RFC 3501 §6.3.1: the old one is closed first
        conn.unselect()
        conn.out.line("* OK [CLOSED] Previous mailbox closed")
    try:
        folder = conn.user.folder(args.mailbox)
    except NoSuchMailbox:
        raise no(f"Mailbox doesn't exist: {args.mailbox[:200]}", "NONEXISTENT") from None
    folder.refresh()
    view = conn.select(folder, readonly)
    conn.send_flags()
    out = conn.out
    out.line(f"* {view.exists} EXISTS")
    out.line(f"* {view.recent_count} RECENT")
    for seq, uid in enumerate(view.uids, 1):
        m = folder.get(uid)
        if m is not None and "\\Seen" not in m.flags:
            out.line(f"* OK [UNSEEN {seq}] First unseen")
            break
    out.line(f"* OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid")
    out.line(f"* OK [UIDNEXT {folder.uidnext}] Predicted next UID")
    out.line(f"* OK [HIGHESTMODSEQ {view.synced}] Highest")          # RFC 7162 §3.1.2.1
    return ("READ-ONLY" if readonly else "READ-WRITE", f"{cmd.name} completed")


def create(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.3.3: parents are made as needed; a trailing "." is allowed."""
    args: MailboxArg = cmd.args
    assert conn.user is not None
    conn.user.create(args.mailbox)
    return None


def _leave_if_selected(conn: CommandContext, name: str) -> None:
    """Before `name` is deleted or renamed away: if it is the selected mailbox (INBOX stays),
    go back to AUTHENTICATED and say so (the CLOSED response code of RFC 7162)."""
    try:
        selected = conn.view is not None and conn.view.folder.name == check_name(name)
    except MailboxNameError:
        return
    if selected and name != INBOX:
        conn.unselect()
        conn.out.line("* OK [CLOSED] Mailbox closed")


def delete(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.3.4; deleting the selected mailbox first leaves it (to AUTHENTICATED)."""
    args: MailboxArg = cmd.args
    assert conn.user is not None
    _leave_if_selected(conn, args.mailbox)
    conn.user.delete(args.mailbox)
    return None


def rename(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.3.5: children move along; renaming INBOX moves its messages into a new mailbox."""
    args: Rename = cmd.args
    assert conn.user is not None
    _leave_if_selected(conn, args.old)
    conn.user.rename(args.old, args.new)
    return None


def subscribe(conn: CommandContext, cmd: Command) -> Result:
    args: MailboxArg = cmd.args
    assert conn.user is not None
    conn.user.subscribe(args.mailbox)
    return None


def unsubscribe(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.3.7; unsubscribing a name that is not subscribed is not an error here."""
    args: MailboxArg = cmd.args
    assert conn.user is not None
    conn.user.unsubscribe(args.mailbox)
    return None


# ---- LIST and LSUB -----------------------------------------------------------------------

def pattern(reference: str, mailbox: str) -> re.Pattern[str]:
    """The names matched by reference + mailbox (RFC 3501 §6.3.8): "*" any, "%" within a level.

    A first level that spells INBOX in any case matches INBOX."""
    full = reference + mailbox
    if full[:5].upper() == INBOX and (len(full) == 5 or full[5] in DELIMITER + "*%"):
        full = INBOX + full[5:]
    regex = "".join(".*" if c == "*" else "[^.]*" if c == "%" else re.escape(c) for c in full)
    return re.compile(regex, re.DOTALL)


def _matches(patterns: list[re.Pattern[str]], name: str) -> bool:
    return any(p.fullmatch(name) for p in patterns)


def list_(conn: CommandContext, cmd: Command) -> Result:
    """LIST (RFC 3501 §6.3.8, RFC 5258 options) and LSUB (§6.3.9)."""
    args: ListArgs = cmd.args
    user = conn.user
    assert user is not None
    lsub = cmd.name == "LSUB"
    select, returns = set(args.select), set(args.returns)
    if not lsub:
        if select - _LIST_SELECT:
            raise bad(f"Unsupported LIST selection option {sorted(select - _LIST_SELECT)[0]}")
        if returns - _LIST_RETURN:
            raise bad(f"Unsupported LIST return option {sorted(returns - _LIST_RETURN)[0]}")
        if args.patterns == ("",) and not select:
            conn.out.line('* LIST (\\Noselect) "." ""')       # the delimiter and the root
            return None
    patterns = [pattern(args.reference, p) for p in args.patterns]
    subscribed = set(user.subscriptions())
    existing = {info.name: info for info in user.list()}
    rows: list[tuple[str, set[str]]] = []
    if lsub or "SUBSCRIBED" in select:
        for name in user.subscriptions():
            if _matches(patterns, name):
                info = existing.get(name)
                attrs = set(info.attributes) if info is not None and not lsub else set()
                if info is None and not lsub:
                    attrs = {"\\NonExistent"}
                rows.append((name, attrs | ({"\\Subscribed"} if not lsub else set())))
        if lsub:                                # RFC 3501 §6.3.9: a "%" stops at a parent
            shown = {name for name, _ in rows}
            for name in sorted({p for s in subscribed for p in _parents(s)} - subscribed - shown):
                if _matches(patterns, name) and any(
                        s.startswith(name + DELIMITER) and not _matches(patterns, s) for s in subscribed):
                    rows.append((name, {"\\Noselect"}))
    else:
        for name, info in existing.items():
            if not _matches(patterns, name):
                continue
            if "SPECIAL-USE" in select and info.special_use is None:
                continue
            attrs = set(info.attributes)
            if "SUBSCRIBED" in returns and name in subscribed:
                attrs.add("\\Subscribed")
            rows.append((name, attrs))
    kind = "LSUB" if lsub else "LIST"
    for name, attrs in rows:
        conn.out.send([f"* {kind} ({' '.join(sorted(attrs))}) \".\" ", astring(name)])
        if "STATUS" in returns and "\\Noselect" not in attrs and "\\NonExistent" not in attrs:
            try:
                _status_line(conn, name, args.status)
            except NoSuchMailbox:
                pass
    return None


def _parents(name: str) -> list[str]:
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels))]


# ---- STATUS and APPEND ---------------------------------------------------------------------

def status(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.3.10; HIGHESTMODSEQ (RFC 7162 §3.1.6) enables CONDSTORE."""
    args: Status = cmd.args
    if "HIGHESTMODSEQ" in args.items:
        conn.enable_condstore()
    try:
        _status_line(conn, args.mailbox, args.items)
    except NoSuchMailbox:
        raise no(f"Mailbox doesn't exist: {args.mailbox[:200]}", "NONEXISTENT") from None
    return None


def _status_line(conn: CommandContext, name: str, items: tuple[str, ...]) -> None:
    assert conn.user is not None
    folder = conn.user.folder(name)
    folder.refresh()
    st = folder.status()
    recent = folder.recent
    if conn.view is not None and conn.view.folder is folder:
        recent += conn.view.recent_count
    values = {"MESSAGES": st.messages, "RECENT": recent, "UIDNEXT": st.uidnext,
              "UIDVALIDITY": st.uidvalidity, "UNSEEN": st.unseen, "HIGHESTMODSEQ": st.highestmodseq,
              "SIZE": st.size}
    shown = " ".join(f"{item} {values[item]}" for item in items)
    parts: list[Part] = ["* STATUS ", astring(folder.name), f" ({shown})"]
    conn.out.send(parts)


def append(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.3.11 with UIDPLUS's APPENDUID (RFC 4315 §3)."""
    args: Append = cmd.args
    assert conn.user is not None
    if not args.message:
        raise no("Can't save a zero-length message")
    if b"\x00" in args.message:
        raise bad("NUL octets are not allowed in a message (RFC 3501 §9: CHAR8)")
    try:
        folder = conn.user.folder(args.mailbox)
    except NoSuchMailbox:
        raise no(f"Mailbox doesn't exist: {args.mailbox[:200]}", "TRYCREATE") from None
    flags = [f for f in args.flags if f.lower() != RECENT.lower()]    # \Recent is the server's to set
    m = folder.append(args.message, flags, args.date)
    conn.stats["appended"] += 1
    return (f"APPENDUID {folder.uidvalidity} {m.uid}", "APPEND completed")


# ---- CHECK and CLOSE -----------------------------------------------------------------------

def check(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.4.1: make the flag changes durable (the rest is already); catch up with the disk."""
    assert conn.view is not None
    conn.view.folder.checkpoint()
    conn.view.folder.refresh()
    return None


def close(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.4.2: expunge silently (unless read-only), then leave SELECTED."""
    view = conn.view
    assert view is not None
    if not view.readonly:
        conn.stats["expunged"] += len(view.folder.expunge())
        view.folder.checkpoint()
    conn.unselect()
    return None

