"""The Queue panel: every queued message and recipient, host by host, with the lab clock's controls.

One row per recipient: queue ID, host, the message's queue (incoming,
active, deferred, hold), recipient, attempts, the next attempt counting down
in lab time, and the last reason.  The rows come from `Lab.queue_page` (the
same records `maillab queue` lists), one page of `PAGE` messages at a time,
so a queue of 100,000 messages costs no more than one of 200.  Actions go
through the same `Lab` methods as the control socket.  Enter opens the
selected message's detail below the table: its attempt history, one line per
try at each MX, with its reason (Enter on it again closes it).
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import RichLog

from ...base.events import Bounced, Deferred, Delivered, Queued, QueueMoved, Removed
from ..fmt import brief_reason, countdown, long_stamp, stamp
from ..forms import ConfirmScreen
from ..journey import attempt_line
from ..palette import palette
from ..panel import Batch, Hint, Panel, PanelContext, guarded, write
from ..rowlist import RowList


PAGE = 100
COLUMNS = ("queue id", "host", "queue", "recipient", "attempts", "next attempt", "last reason", "sender")
# narrow: the sender goes first, the reason (cause first) is cut, then the counts go
SHRINK = (("sender", 0), ("last reason", 24), ("attempts", 0), ("next attempt", 0), ("last reason", 10))
REFRESH_EVERY = 0.5          # seconds, at most, when queue events arrive


class QueuePanel(Panel):
    TITLE = "Queue"
    HELP = """\
What every MTA host still has to deliver (Postfix's `mailq`), one row per
recipient: the message's queue — *incoming* (just arrived), *active* (being
delivered), *deferred* (waiting for a retry), *hold* (set aside) — the attempts
so far, when the next attempt is due (counted down in **lab time**), and the last
reason a delivery failed.

- `Enter` shows the selected message's attempts: each try at each MX (✗ failed,
  ✓ taken), its address and the reason, oldest first (the last 20 are kept).
- `x` flush: try every deferred message now (`postqueue -f`).
- `h` hold / `r` release the selected message; `d` deletes it (asks first);
  `R` requeues it (forget the retry schedule, try now).
- `H` shows one host at a time; `[` and `]` page through a long queue.
- The lab clock: `>` faster, `<` slower, `a` jump ahead (say `4h`, `1d`): watch
  retries back off (5 min, 10, 20, ... up to 66 min) and, after 5 days, the bounce.
- In a flood, a host with more than 256 deliveries under way or waiting makes each
  new message wait at MAIL FROM, up to a second, for them to drain: Postfix's
  *in-flow control* (`in_flow_delay`). The maillog says so (program `cleanup`).
"""
    COMMANDS = [("Queue: flush", "Try every deferred message now", "flush"),
                ("Queue: hold the selected message", "Set it aside until released", "hold"),
                ("Queue: release the selected message", "Deliver it again", "release"),
                ("Queue: delete the selected message", "Remove it from the queue", "delete"),
                ("Queue: requeue the selected message", "Forget its retry schedule, try now", "requeue"),
                ("Queue: next host", "Show one host's queue at a time", "next_host"),
                ("Queue: next page", "The next page of a long queue", "page(1)"),
                ("Queue: previous page", "The previous page of a long queue", "page(-1)")]
    BINDINGS = [Binding("x", "flush", "Flush"), Binding("h", "hold", "Hold"),
                Binding("r", "release", "Release"), Binding("d", "delete", "Delete"),
                Binding("R", "requeue", "Requeue", show=False), Binding("H", "next_host", "Host"),
                Binding("right_square_bracket", "page(1)", "Page", show=False),
                Binding("left_square_bracket", "page(-1)", "Page", show=False),
                Binding("greater_than_sign", "app.clock_faster", "Faster"),
                Binding("less_than_sign", "app.clock_slower", "Slower"),
                Binding("a", "app.clock_advance", "Advance")]
    DEFAULT_CSS = """
    QueuePanel #queue-table { height: 1fr; }
    QueuePanel #queue-detail { height: 12; display: none; border-top: solid $accent; }
    QueuePanel #queue-detail.-open { display: block; }
    """

    def __init__(self, ctx: PanelContext, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.host: str | None = None
        self.page = 0
        self.total = 0
        self._dirty = True
        self._last = 0.0
        self.detail: str | None = None           # queue ID whose attempts are shown
        self._shown: dict[str, dict] = {}        # this page's messages, by queue ID
        self._drawn: object = None               # what the detail shows now

    def compose_panel(self) -> ComposeResult:
        yield Hint(id="queue-status")
        yield RowList(COLUMNS, id="queue-table", shrink=SHRINK)
        yield RichLog(id="queue-detail", wrap=True, max_lines=200, auto_scroll=False)

    def focus_main(self) -> None:
        self.query_one("#queue-table", RowList).focus()

    def feed(self, batch: Batch) -> None:
        if batch.has(Queued, QueueMoved, Removed, Deferred, Delivered, Bounced):
            self._dirty = True

    def flush(self) -> None:
        if self._dirty and time.monotonic() - self._last >= REFRESH_EVERY:
            self.reload()

    def tick(self) -> None:
        self.reload()       # countdowns move with the lab clock

    def show(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._dirty = False
        self._last = time.monotonic()
        total, entries = self.lab.queue_page(self.page * PAGE, PAGE, self.host)
        if self.page and self.page * PAGE >= total:
            self.page = max((total - 1) // PAGE, 0)
            total, entries = self.lab.queue_page(self.page * PAGE, PAGE, self.host)
        self.total = total
        now = self.lab.clock.now()
        rows: dict[str, tuple[str, ...]] = {}
        for e in entries:
            for r in e["recipients"]:
                status = e["queue"] if r["status"] == "pending" else r["status"]
                due = countdown(r["next_attempt"] if r["attempts"] else None, now) \
                    if status == "deferred" else "-"
                rows[f"{e['id']}\t{r['address']}"] = (
                    e["id"], e["host"], status, r["address"], str(r["attempts"]), due,
                    brief_reason(r["last_result"] or ""), e["sender"] or "<>")
        self.query_one("#queue-table", RowList).replace(rows)
        self._shown = {e["id"]: e for e in entries}
        self._status(now)
        if self.detail is not None:
            self._draw_detail()

    @guarded
    def on_row_list_selected(self, event: RowList.Selected) -> None:
        if event.row_list.id != "queue-table":
            return
        qid = event.key.partition("\t")[0]
        self.detail = None if qid == self.detail else qid
        self.query_one("#queue-detail", RichLog).set_class(self.detail is not None, "-open")
        self._drawn = None
        if self.detail is not None:
            self._draw_detail()

    def _draw_detail(self) -> None:
        """The selected message's attempt history, redrawn only when it changed."""
        entry = self._shown.get(self.detail or "")
        state = (self.detail, entry and entry["queue"], entry and len(entry["history"]),
                 entry and entry["history"] and entry["history"][-1]["at"])
        if state == self._drawn:
            return
        self._drawn = state
        log = self.query_one("#queue-detail", RichLog)
        log.clear()
        colours = palette(log)
        if entry is None:
            write(log, Text(f"{self.detail}: no longer queued here (delivered, bounced, deleted, or "
                            "on another page)", style=colours.style("muted")))
            return
        history = entry["history"]
        write(log, Text(f"{entry['id']} at {entry['host']} ({entry['queue']}), from <{entry['sender']}>: "
                        f"{len(history)} tr{'y' if len(history) == 1 else 'ies'}, oldest first", style="bold"))
        if not history:
            write(log, Text("   no attempt yet", style=colours.style("muted")))
        for a in history:
            write(log, Text(f"{stamp(a['at'])} {attempt_line(a['mx'], a['address'], a['result'], a['reason'])}",
                            style=colours.style("good" if a["result"] == "delivered" else "bad")))

    def restyle(self) -> None:
        if self.detail is not None:
            self._drawn = None
            self._draw_detail()

    def _status(self, now: float) -> None:
        pages = max((self.total + PAGE - 1) // PAGE, 1)
        speed = self.lab.clock.speed
        where = self.host or "all hosts"
        self.query_one("#queue-status", Hint).show(
            f"{self.total} message{'s' if self.total != 1 else ''} queued on {where} · page "
            f"{self.page + 1}/{pages} · lab clock {long_stamp(now)} ×{speed:g}")

    def _selected_id(self) -> str | None:
        row = self.query_one("#queue-table", RowList).selected
        if row is None:
            self.app.notify("The queue is empty: nothing selected", severity="warning")
            return None
        return row[0]

    # --- actions -------------------------------------------------------------------
    @guarded
    def action_flush(self) -> None:
        n = self.lab.queue_flush()
        self.app.notify(f"flush: {n} deferred message{'s' if n != 1 else ''} tried now")
        self.reload()

    async def _act(self, action: str, qid: str | None = None) -> None:
        qid = qid or self._selected_id()
        if qid is None:
            return
        await self.lab.queue_action(action, qid)
        self.app.notify(f"{action}: {qid}")
        self.reload()

    @guarded
    async def action_hold(self) -> None:
        await self._act("hold")

    @guarded
    async def action_release(self) -> None:
        await self._act("release")

    @guarded
    async def action_requeue(self) -> None:
        await self._act("requeue")

    @guarded
    def action_delete(self) -> None:
        qid = self._selected_id()
        if qid is not None:
            self.app.push_screen(ConfirmScreen(f"Delete message {qid} from the queue? "
                                               "Its sender is not told."),
                                 lambda yes: self._delete_confirmed(qid, yes))

    @guarded
    async def _delete_confirmed(self, qid: str, yes: bool | None) -> None:
        if yes:
            await self._act("delete", qid)

    @guarded
    def action_next_host(self) -> None:
        hosts = [None, *self.lab.mtas]
        self.host = hosts[(hosts.index(self.host) + 1) % len(hosts)]
        self.page = 0
        self.reload()

    @guarded
    def action_page(self, step: int) -> None:
        pages = max((self.total + PAGE - 1) // PAGE, 1)
        self.page = min(max(self.page + step, 0), pages - 1)
        self.reload()
