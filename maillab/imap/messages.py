"""The message commands of IMAP on the selected mailbox: FETCH, STORE, SEARCH, COPY, MOVE,
EXPUNGE and their UID forms (RFC 3501 §6.4, RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 7162 CONDSTORE).

Handlers have the shape of mailboxes.py's: they run inside
`ImapConnection.execute()`, write untagged responses and return their tagged
OK (text, or response code and text).  FETCH is a generator: it yields after
each chunk of output so the adapter can send it, which keeps the memory of
`FETCH 1:* BODY[]` bounded by one chunk.

Messages are named through the session's `View` (sequence numbers as the
client knows them).  A message another session expunged but that is not yet
reported (a ghost) still has its number: FETCH, COPY and MOVE by sequence
number answer NO [EXPUNGEISSUED] for it (RFC 2180 §4.1), UID forms skip it.
This session's own flag changes are recorded in `View.own`, so the catch-up
after the command does not report them a second time.
"""

from __future__ import annotations

from typing import Generator

from ..store import SEEN, NoSuchMailbox
from ..store.errors import MessageGone
from .command_context import CommandContext, Result
from .fetch import MessageData, flags_text, render
from .parser import Command, Copy, Expunge, Fetch, FetchItem, Search, Store
from .response import no
from .search import Compiler, Pool
from .view import View

CHUNK_OCTETS = 256 * 1024           # FETCH output handed to the adapter at a time
BATCH = 200                         # messages whose \Seen is set in one store call
CHARSETS = ("US-ASCII", "UTF-8")


def uid_set(uids: list[int]) -> str:
    """An ascending list of UIDs as a compact sequence set ("1:3,7") for COPYUID (RFC 4315 §3)."""
    out: list[str] = []
    start = prev = uids[0]
    for u in uids[1:]:
        if u == prev + 1:
            prev = u
            continue
        out.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = u
    out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)


# ---- FETCH ---------------------------------------------------------------------------------

def fetch(conn: CommandContext, cmd: Command) -> Generator[None, None, Result]:
    """RFC 3501 §6.4.5; UID FETCH always returns UID (§6.4.8); CHANGEDSINCE (RFC 7162 §3.1.4)."""
    args: Fetch = cmd.args
    view = conn.view
    assert view is not None
    items = list(args.items)
    if cmd.uid and not any(i.name == "UID" for i in items):
        items.insert(0, FetchItem("UID", "UID"))
    wants_modseq = args.changedsince is not None or any(i.name == "MODSEQ" for i in items)
    if wants_modseq:
        conn.enable_condstore()
    pairs = view.resolve(args.seqset, cmd.uid)
    folder, out = view.folder, conn.out
    set_seen = not view.readonly and any(not i.peek for i in items)
    since = args.changedsince
    missing = False
    for start in range(0, len(pairs), BATCH):
        batch = pairs[start:start + BATCH]
        seen_now: set[int] = set()
        if set_seen:
            unseen = [uid for _, uid in batch if (m := folder.get(uid)) is not None and SEEN not in m.flags]
            if unseen:
                result = folder.store(unseen, [SEEN], "add")
                if result.modseq:
                    view.own.add(result.modseq)
                seen_now = {m.uid for m in result.changed}
        for seq, uid in batch:
            m = folder.get(uid)
            if m is None:
                missing = missing or not cmd.uid
                continue
            if since is not None and m.modseq <= since:
                continue
            conn.announce_keywords()
            data = MessageData(folder, seq, m, view.is_recent(uid))
            try:
                parts = render(data, items, extra_flags=uid in seen_now,
                               modseq=wants_modseq or (conn.condstore and uid in seen_now))
            except MessageGone:
                missing = missing or not cmd.uid
                continue
            out.bulk(parts)
            conn.stats["fetched"] += 1
            if len(out) >= CHUNK_OCTETS:
                yield
    if missing:
        raise no("Some of the requested messages no longer exist", "EXPUNGEISSUED")
    return None


def _check_writable(view: View) -> None:
    if view.readonly:
        raise no("Mailbox is read-only (selected with EXAMINE)", "CANNOT")


# ---- STORE ---------------------------------------------------------------------------------

def store(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.4.6; UNCHANGEDSINCE and MODIFIED (RFC 7162 §3.1.3)."""
    args: Store = cmd.args
    view = conn.view
    assert view is not None
    _check_writable(view)
    if args.unchangedsince is not None:
        conn.enable_condstore()
    pairs = view.resolve(args.seqset, cmd.uid)
    folder = view.folder
    result = folder.store([uid for _, uid in pairs], args.flags, args.mode, args.unchangedsince)
    if result.modseq:
        view.own.add(result.modseq)
        if "\\Deleted" in args.flags and args.mode != "remove":
            conn.stats["deleted"] += len(result.changed)
    modified = set(result.modified)
    changed = {m.uid for m in result.changed}
    out = conn.out
    for seq, uid in pairs:
        m = folder.get(uid)
        if m is None or uid in modified:
            continue
        conn.announce_keywords()            # after reading m.flags, before sending them
        if args.silent:
            if conn.condstore and uid in changed:       # RFC 7162 §3.1.3: MODSEQ even when silent
                out.bulk([f"* {seq} FETCH (UID {uid} MODSEQ ({m.modseq}))"])
            continue
        uid_part = f"UID {uid} " if cmd.uid or conn.condstore else ""
        modseq_part = f" MODSEQ ({m.modseq})" if conn.condstore else ""
        out.bulk([f"* {seq} FETCH ({uid_part}FLAGS {flags_text(m.flags, view.is_recent(uid))}{modseq_part})"])
    if modified:
        numbers = sorted(modified) if cmd.uid else [seq for seq, uid in pairs if uid in modified]
        return (f"MODIFIED {uid_set(numbers)}", "Conditional STORE failed")
    return None


# ---- SEARCH --------------------------------------------------------------------------------

def _uses(key: tuple, kind: str) -> bool:
    if key[0] == kind:
        return True
    if key[0] == "and":
        return any(_uses(k, kind) for k in key[1])
    if key[0] in ("or", "not"):
        return any(_uses(k, kind) for k in key[1:])
    return False


def search(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.4.4; with a MODSEQ key the highest MODSEQ of the hits (RFC 7162 §3.1.5)."""
    args: Search = cmd.args
    view = conn.view
    assert view is not None
    if args.charset is not None and args.charset not in CHARSETS:
        raise no(f"Unsupported charset {args.charset[:40]}", "BADCHARSET (US-ASCII UTF-8)")
    with_modseq = _uses(args.key, "modseq")
    if with_modseq:
        conn.enable_condstore()
    uids = view.uids
    matches, _cost = Compiler(len(uids), uids[-1] if uids else 0).compile(args.key)
    pool = Pool(view.folder, view.folder.messages_of(uids), view.recent)
    found = matches(pool, pool.everyone())
    if pool.gone:
        found = [i for i in found if i not in pool.gone]
    msgs = pool.msgs
    hits = [msgs[i].uid for i in found] if cmd.uid else [i + 1 for i in found]    # type: ignore[union-attr]
    highest = max((msgs[i].modseq for i in found), default=0) if with_modseq else 0  # type: ignore[union-attr]
    text = "* SEARCH " + " ".join(map(str, hits)) if hits else "* SEARCH"
    if with_modseq and hits:
        text += f" (MODSEQ {highest})"
    conn.out.line(text)
    return None


# ---- COPY, MOVE, EXPUNGE ---------------------------------------------------------------------

def _transfer(conn: CommandContext, cmd: Command, move: bool) -> Result:
    args: Copy = cmd.args
    view, user = conn.view, conn.user
    assert view is not None and user is not None
    if move:
        _check_writable(view)
    pairs = view.resolve(args.seqset, cmd.uid)
    folder = view.folder
    try:
        dest = user.folder(args.mailbox)
    except NoSuchMailbox:
        raise no(f"Mailbox doesn't exist: {args.mailbox[:200]}", "TRYCREATE") from None
    uids = [uid for _, uid in pairs if folder.get(uid) is not None]
    if len(uids) < len(pairs) and not cmd.uid:            # RFC 3501 §6.4.7: all or nothing
        raise no("Some of the requested messages no longer exist", "EXPUNGEISSUED")
    done = folder.move(uids, dest) if move else folder.copy(uids, dest)
    code = ""
    if done:
        code = f"COPYUID {dest.uidvalidity} {uid_set([s for s, _ in done])} {uid_set([d for _, d in done])}"
    if move:
        conn.stats["expunged"] += len(done)
        if code:                                            # RFC 6851 §4.3: before the EXPUNGEs
            conn.out.line(f"* OK [{code}] Moved UIDs")
        return None
    return (code, "COPY completed") if code else None


def copy(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.4.7, COPYUID (RFC 4315 §3)."""
    return _transfer(conn, cmd, move=False)


def move(conn: CommandContext, cmd: Command) -> Result:
    """RFC 6851: copy, then expunge; the EXPUNGE responses come with the catch-up."""
    return _transfer(conn, cmd, move=True)


def expunge(conn: CommandContext, cmd: Command) -> Result:
    """RFC 3501 §6.4.3 and UID EXPUNGE (RFC 4315 §2.1); the EXPUNGE responses come with the catch-up."""
    args: Expunge = cmd.args
    view = conn.view
    assert view is not None
    _check_writable(view)
    if args.uids is not None:
        removed = view.folder.expunge([uid for _, uid in view.resolve(args.uids, True)])
    else:
        removed = view.folder.expunge()
    conn.stats["expunged"] += len(removed)
    return None

