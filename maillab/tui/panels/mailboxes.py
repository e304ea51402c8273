"""The Mailboxes panel: every account with its mailbox host, message count, unseen count and size.

Counts come from the Maildirs (`Lab.mailbox_summary`, read in a thread) and
are refreshed when the store reports a change (and counted once as the lab
starts, so the panel opens on numbers), at most once a second, and no
more often than 20 times what the last count took: counting looks at every
message file, and in a flood of deliveries into one mailbox (15,000 files
after 30 s at 500 msg/s) a count every second took the GIL from the loop for
long enough to hold key presses up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from textual.app import ComposeResult

from ...base.events import MailboxCreated, MailboxDeleted, MailboxRenamed, MessagesAdded, MessagesExpunged
from ..fmt import size
from ..panel import Batch, Hint, Panel, PanelContext, guarded
from ..rowlist import RowList


COLUMNS = ("user", "name", "mailbox host", "messages", "unseen", "size", "folders")
REFRESH_EVERY = 1.0     # seconds between two counts, at least...
COUNT_SHARE = 20        # ...and 20 times what the last one took


class MailboxesPanel(Panel):
    TITLE = "Mailboxes"
    HELP = """\
Every account of the lab's directory: its address (the login name for POP3,
IMAP and submission; password `maillab`), the host that keeps its mailboxes
(the domain's first MX), how many messages it holds in all its folders, how many
are unseen, and their size. Mail delivered by the MDA lands in INBOX; a POP3
client that deletes what it downloads makes the count drop.
"""
    DEFAULT_CSS = """
    MailboxesPanel #mailboxes-table { height: 1fr; }
    """

    def __init__(self, ctx: PanelContext, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self._dirty = True
        self._next = 0.0              # monotonic time of the next count, at the earliest

    def compose_panel(self) -> ComposeResult:
        yield Hint(id="mailboxes-hint")
        yield RowList(COLUMNS, id="mailboxes-table",
                      shrink=(("folders", 0), ("name", 10), ("size", 0), ("mailbox host", 13)))

    def focus_main(self) -> None:
        self.query_one("#mailboxes-table", RowList).focus()

    def feed(self, batch: Batch) -> None:
        if batch.has(MessagesAdded, MessagesExpunged, MailboxCreated, MailboxDeleted, MailboxRenamed):
            self._dirty = True
        if self._next == 0.0:
            self.flush()            # the first count as the lab starts: the panel opens on numbers

    def show(self) -> None:
        self._dirty = True
        self.call_after_refresh(self.safe, self.flush)     # the panel on screen first, with the last count

    def flush(self) -> None:
        if self._dirty and self.lab.ctx is not None and time.monotonic() >= self._next:
            self._dirty = False
            self._next = float("inf")          # until this count is done
            self.run_worker(self.reload, group="mailboxes", exclusive=True, exit_on_error=False)

    @guarded
    async def reload(self) -> None:
        started = time.monotonic()
        try:
            rows = await asyncio.to_thread(self.lab.mailbox_summary)
        finally:
            took = time.monotonic() - started
            self._next = time.monotonic() + max(REFRESH_EVERY, COUNT_SHARE * took)
        self.query_one("#mailboxes-table", RowList).replace({
            r["address"]: (r["address"], r["display"] or "-", r["host"], str(r["messages"]), str(r["unseen"]),
                           size(r["size"]), str(r["folders"]))
            for r in rows})
        total = sum(r["messages"] for r in rows)
        self.query_one("#mailboxes-hint", Hint).show(
            f"{len(rows)} accounts, {total} messages, {size(sum(r['size'] for r in rows))} · "
            f"POP3: telnet 127.0.0.1 {self.lab.ports.pop3} (USER mafudge@syr.edu, PASS maillab)")
