"""Which store commands are cheap and bounded enough to run on the event loop.

A command the protocol answers through `Execute` runs in a worker thread
unless the predicate here says it is cheap: then the adapter runs it on the
loop (server.py), saving the hand-over to a thread and back, which costs more
than the command itself (measured with 10 sessions: FETCH of 10 headers
9.6 ms median in a thread; see bench/imap.py --write).  Cheap means memory
work on the index plus a bounded number of small file reads and renames:

- FETCH of at most `INDEX_MESSAGES` messages for items from the index (FLAGS,
  UID, RFC822.SIZE, INTERNALDATE, MODSEQ), or of at most `READ_MESSAGES` that
  also need their header or body, the bodies `READ_OCTETS` in all;
- SEARCH over at most `SEARCH_MESSAGES` messages whose keys the index or the
  header cache answers (`search.memory_only`): a key no message has cached
  yet reads files, so the first SEARCH SUBJECT on a mailbox runs in a thread
  and fills the cache for the next ones;
- STORE of at most `STORE_MESSAGES` messages: renames and one uidlist write,
  no fsync (store/folder.py says why);
- NOOP when its look at the Maildir finds nothing changed (two stat() calls).

Anything bigger (FETCH 1:* of a 10,000-message folder, SEARCH BODY) stays in
a thread, so no session holds up the others; and the adapter runs a cheap
command on the loop only if it gets the user's store lock without waiting.
"""

from __future__ import annotations

from .command_context import CommandContext
from .parser import Command, Fetch, Search, Store
from .search import memory_only

INDEX_MESSAGES = 500
READ_MESSAGES = 20
READ_OCTETS = 256 * 1024
SEARCH_MESSAGES = 2000
STORE_MESSAGES = 200

_INDEX_ITEMS = frozenset({"FLAGS", "UID", "RFC822.SIZE", "INTERNALDATE", "MODSEQ"})
_HEADER_SECTIONS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")


def fetch_blocking(conn: CommandContext, cmd: Command) -> bool:
    """Whether a FETCH must run in a thread (see the module docstring)."""
    view = conn.view
    if view is None:
        return True
    args: Fetch = cmd.args
    count = view.count(args.seqset, cmd.uid)
    needs_body = needs_header = False
    for item in args.items:
        if item.name in _INDEX_ITEMS:
            continue
        sec = item.section
        if item.name == "RFC822.HEADER" or (sec is not None and not sec.part and sec.text in _HEADER_SECTIONS):
            needs_header = True
        else:                                   # ENVELOPE, BODYSTRUCTURE, BODY[...], RFC822, ...
            needs_body = True
    if not (needs_body or needs_header):
        return count > INDEX_MESSAGES
    if count > READ_MESSAGES:
        return True
    if needs_body:
        folder = view.folder
        octets = sum(m.size for _, uid in view.resolve(args.seqset, cmd.uid, strict=False)
                     if (m := folder.get(uid)) is not None)
        return octets > READ_OCTETS
    return False


def search_blocking(conn: CommandContext, cmd: Command) -> bool:
    """Whether a SEARCH must run in a thread: too many messages, or keys that read files."""
    view = conn.view
    if view is None or view.exists > SEARCH_MESSAGES:
        return True
    args: Search = cmd.args
    return not memory_only(args.key, view.folder, view.uids)


def noop_blocking(conn: CommandContext, cmd: Command) -> bool:
    """Whether a NOOP must run in a thread: its look at the Maildir would list the folder (someone
    renamed or added a file since the last scan, say a STORE), which costs a millisecond per
    thousand messages."""
    view = conn.view
    return view is not None and view.folder.scan_due()


def store_blocking(conn: CommandContext, cmd: Command) -> bool:
    """Whether a STORE must run in a thread: more than `STORE_MESSAGES` renames."""
    view = conn.view
    if view is None:
        return True
    args: Store = cmd.args
    return view.count(args.seqset, cmd.uid) > STORE_MESSAGES
