"""Local deliveries an earlier run made but did not get to record in its spool.

A stop or crash can fall between the MDA's rename into a Maildir and the spool
record that says "sent".  The MDA tags each file name with the queue ID and the
recipient (`mda.delivery_tag`), so at replay, before anything is delivered
again, `already_delivered` looks each spooled local recipient up in its INBOX:
one index of tags per Maildir (one listing of new/ and cur/), built once for
the whole replay, not a listing per message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from ..lab.state import StateDir
from ..mta.mda import Mda, delivery_tag
from ..store.maildir import tags_in
from .records import Entry


class RedeliveryContext(Protocol):
    """What the replay check needs of the lab: the MDA (who a recipient is) and the state folder."""
    mda: Mda
    state: StateDir


def already_delivered(ctx: RedeliveryContext, entries: list[Entry],
                      is_local: Callable[[str], bool]) -> dict[str, list[str]]:
    """Queue ID -> its pending recipients delivered here (`is_local`) whose copy is in their
    Maildir already.  Blocking (lists folders): run it in a thread."""
    indexes: dict[Path, set[str]] = {}
    found: dict[str, list[str]] = {}
    for entry in entries:
        for r in entry.pending:
            account = ctx.mda.account_for(r.address) if is_local(r.address) else None
            if account is None:
                continue
            folder = ctx.state.maildir(account.domain, account.local)
            index = indexes.get(folder)
            if index is None:
                index = indexes[folder] = tags_in(folder)
            if delivery_tag(entry.id, r.address) in index:
                found.setdefault(entry.id, []).append(r.address)
    return found
