"""The Journey panel: a delivered message's hops from its Received headers, beside the lab's record.

The table lists recent final deliveries (into a Maildir).  Picking one reads
the delivered copy's header (`Lab.delivered_message`, in a thread, by the mailbox
and UID its Delivered event names) and shows its Received headers as a
timeline, oldest hop first: who handed the message
to whom, from which IP, with which protocol, with or without TLS, and the
delay since the previous hop.  Beside it, what the lab itself saw for each
queue ID of the trace (`JourneyIndex`): queued, DNS look-ups by that host,
the SMTP sessions that carried it, deliveries and deferrals.

Mail handled before the TUI started (or by an earlier `maillab serve` on the
same state folder) was not seen live: for each queue ID whose live record is
missing or began late, the panel reads the maillog from its end
(`maillog_read.find_queue_ids`, in a thread, bounded) and shows those lines
in the same rows, labelled "from the maillog" (the others: "seen live").  At
mount the table also gets the maillog's last deliveries, before the live ones.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import RichLog

from ...lab.maillog_read import Found, find_queue_ids, recent_deliveries
from ..fmt import duration, stamp
from ..journey import Hop, JourneyIndex, QueueRecord, hops
from ..palette import palette
from ..panel import Batch, Hint, Panel, PanelContext, guarded, write
from ..rowlist import RowList
from ..sessions import Line


COLUMNS = ("delivered", "recipient", "queue id", "host")
SESSION_LINES = 24            # of a session's dialogue shown: the first SESSION_HEAD and the last ones
SESSION_HEAD = 8
TABLE_ROWS = 200             # deliveries listed, newest last
NARROW = 120
HINT = "Recent deliveries into Maildirs: Enter shows a message's journey."


class JourneyPanel(Panel):
    TITLE = "Journey"
    HELP = """\
Pick a delivered message (`Enter`) to follow it hop by hop. On the left, its
**Received** headers — each MTA adds one on top, so they are read bottom-up —
as a timeline: the client (its HELO name, the name its IP resolves to, the IP),
the receiving host, the protocol (`ESMTP`; `ESMTPS` means TLS, `ESMTPA` a login,
RFC 3848), the queue ID and the delay since the previous hop.

On the right, the lab's own record of each queue ID: when it was queued, the
DNS look-ups that host made (MX, then A), the SMTP dialogue that carried it to
the next hop, and the final delivery. Compare the two: headers can be forged,
the lab's record can not.

Each queue ID says where its record comes from: *seen live* (the TUI watched
it happen) or *from the maillog* (it happened before the TUI started; the
maillog has its lines and connections but no dialogue, and its DNS lines name
no queue ID, so those shown are the host's look-ups in that time window). The
list also starts with the maillog's last deliveries.
"""
    COMMANDS = [("Journey: show the selected message", "Its Received hops and the lab's record", "show")]
    BINDINGS = [Binding("enter", "show", "Show", show=False)]
    DEFAULT_CSS = """
    JourneyPanel #deliveries { height: 30%; min-height: 4; }
    JourneyPanel #journey-body { height: 1fr; layout: horizontal; border-top: solid $accent; }
    JourneyPanel #journey-body.-narrow { layout: vertical; }
    JourneyPanel #hops, JourneyPanel #record { width: 1fr; height: 1fr; }
    JourneyPanel #record { border-left: solid $accent; }
    JourneyPanel #journey-body.-narrow #record { border-left: none; border-top: solid $accent; }
    """

    def __init__(self, ctx: PanelContext, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.index = ctx.journeys
        self.sessions = ctx.sessions
        self._dirty = True
        self._reorder = False            # past deliveries arrived: rebuild the table in order
        self.current: tuple[str, str] | None = None

    def compose_panel(self) -> ComposeResult:
        yield Hint(HINT, id="journey-hint")
        yield RowList(COLUMNS, id="deliveries", shrink=(("host", 0),))
        with Container(id="journey-body"):
            yield RichLog(id="hops", wrap=True, max_lines=500, auto_scroll=False)
            yield RichLog(id="record", wrap=True, max_lines=2_000, auto_scroll=False)

    def on_mount(self) -> None:
        self.run_worker(self._load_past, group="journey-past", exit_on_error=False)

    @guarded
    async def _load_past(self) -> None:
        """The maillog's last deliveries (before the TUI started) go first in the table."""
        past, _note = await asyncio.to_thread(recent_deliveries, self.lab.state.maillog, TABLE_ROWS)
        added = self.index.add_past(past)
        if added:
            self.query_one("#journey-hint", Hint).show(f"{HINT} The first {added} are from the maillog.")
            self._dirty = self._reorder = True
            if self.ctx.active_panel() is self:
                self.flush()

    def focus_main(self) -> None:
        self.query_one("#deliveries", RowList).focus()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one("#journey-body").set_class(event.size.width < NARROW, "-narrow")

    def feed(self, batch: Batch) -> None:
        self._dirty = self._dirty or batch.deliveries > 0

    def flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        table = self.query_one("#deliveries", RowList)
        with table.batch():
            if self._reorder:
                self._reorder = False
                table.clear()
            for d in list(self.index.deliveries)[-TABLE_ROWS:]:   # oldest first, as they came
                key = f"{d.queue_id}\t{d.recipient}"
                if key not in table:
                    table.upsert(key, (stamp(d.time), d.recipient, d.queue_id, d.host))
            table.keep_last(TABLE_ROWS)

    # --- showing one message ---------------------------------------------------------
    @guarded
    async def on_row_list_selected(self, event: RowList.Selected) -> None:
        if event.row_list.id == "deliveries":
            qid, _, recipient = event.key.partition("\t")
            await self.show_journey(recipient, qid)

    @guarded
    async def action_show(self) -> None:
        row = self.query_one("#deliveries", RowList).selected
        if row is None:
            self.app.notify("No delivered message yet: send one first", severity="warning")
            return
        _when, recipient, qid, _host = row
        await self.show_journey(recipient, qid)

    def restyle(self) -> None:
        if self.current is not None:
            self.run_worker(self.show_journey(*self.current), group="journey-restyle", exclusive=True,
                            exit_on_error=False)

    async def show_journey(self, recipient: str, qid: str) -> None:
        self.current = (recipient, qid)
        header = await asyncio.to_thread(self.lab.delivered_message, self.index.delivery(qid, recipient))
        trace = hops(header) if header else []
        self._draw_hops(recipient, qid, trace, found=header is not None)
        qids = list(dict.fromkeys(h.queue_id for h in trace if h.queue_id)) or [qid]
        missing = [q for q in qids if not self.index.complete(q)]
        if not missing:
            self._draw_record(qids, None)
            return
        self._draw_record(qids, None, looking=True)
        found = await asyncio.to_thread(find_queue_ids, self.lab.state.maillog, missing, self.index.addresses)
        if self.current == (recipient, qid):           # still the message on screen
            self._draw_record(qids, found)

    def _draw_hops(self, recipient: str, qid: str, trace: list[Hop], found: bool) -> None:
        log = self.query_one("#hops", RichLog)
        log.clear()
        colours = palette(log)
        write(log, Text(f"Received headers of {qid} for {recipient}", style="bold"))
        if not found:
            write(log, Text("The message is no longer in the mailbox (read by POP3, deleted?).",
                           style="italic"))
            return
        for n, hop in enumerate(trace, 1):
            head = Text()
            head.append(f"{n}. ", style="bold")
            head.append((stamp(hop.date) if hop.date else "??:??:??") + " ", style=colours.style("muted"))
            head.append(hop.by, style=colours.style("host"))
            if hop.delay is not None:
                head.append(f"  +{duration(hop.delay)}", style=colours.style("muted"))
            write(log, head)
            source = Text("   from ")
            if hop.client_ip or hop.helo:
                source.append(f"{hop.client_name or '?'} [{hop.client_ip or '?'}]", style=colours.style("peer"))
                if hop.helo:
                    source.append(f" HELO {hop.helo}")
            else:
                source.append("the host itself (a bounce or notice)")
            write(log, source)
            detail = Text(f"   {hop.protocol or '?'} · ")
            detail.append("TLS" if hop.tls else "no TLS: readable on the wire", style=colours.style("good" if hop.tls else "bad"))
            if hop.authenticated:
                detail.append(" · logged in (AUTH)")
            detail.append(f" · id {hop.queue_id or '?'}")
            write(log, detail)
        write(log, Text(f"{len(trace)} hop{'s' if len(trace) != 1 else ''}; the newest header is on top "
                       "of the message.", style=colours.style("note")))

    def _draw_record(self, qids: list[str], found: Found | None, looking: bool = False) -> None:
        """Each queue ID's record: the live one when it is complete, else the maillog's (`found`),
        else what the live one has; `looking` while the maillog is being read."""
        log = self.query_one("#record", RichLog)
        log.clear()
        colours = palette(log)
        write(log, Text("What the lab saw", style="bold"))
        past = JourneyIndex.from_events(self.index.addresses, found.events) if found else None
        for qid in qids:
            live = self.index.records.get(qid)
            if live is not None and self.index.complete(qid):
                self._write_record(log, qid, live, self.index, "seen live", live.sessions)
            elif past is not None and qid in past.records:
                self._write_record(log, qid, past.records[qid], past, "from the maillog",
                                   live.sessions if live is not None else [])
            elif live is not None:
                self._write_record(log, qid, live, self.index, "seen live, since the TUI started", live.sessions)
            elif looking:
                write(log, Text(f"── {qid}: not seen live; looking in the maillog…", style=colours.style("muted")))
            else:
                write(log, Text(f"── {qid}: no record: not seen live, and not in the maillog",
                                style=colours.style("muted")))
        if found is not None:
            write(log, Text(f"From the maillog: {found.note}. Its DNS lines name no queue ID: those shown "
                            "are all the look-ups by the hop's host in its time window, which may include "
                            "another message's" + (f" ({found.dns_capped} more not shown)" if found.dns_capped
                                                   else "") + ".", style=colours.style("note")))

    def _write_record(self, log: RichLog, qid: str, record: QueueRecord, index: JourneyIndex, source: str,
                      sessions: list[str]) -> None:
        """One queue ID's rows (its events and its host's DNS look-ups meanwhile, from `index`),
        then the transcripts of the live `sessions` that carried it."""
        colours = palette(log)
        write(log, Text(f"── {qid} at {record.host} ({source})", style="bold"))
        items: list[tuple[float, Text]] = [(t, Text(f"{stamp(t)} {text}")) for t, text in record.events]
        for q in index.dns_for(record.host, record.first - 1, record.last + 1):
            items.append((q.time, Text(f"{stamp(q.time)} DNS {q.name} {q.rdtype} -> {q.rcode}, "
                                       f"{q.answers} answer{'s' if q.answers != 1 else ''}",
                                       style=colours.style("dns"))))
        items.sort(key=lambda item: item[0])
        for _t, text in items:
            write(log, text)
        # the receiving server's transcript; the sender's side of it only if that is all we have
        for sid in [x for x in sessions if "/smtp-out/" not in x] or sessions:
            self._write_session(log, sid)
        if index is not self.index and not sessions:
            write(log, Text("   no dialogue: the maillog does not keep one (only mail seen live shows it)",
                           style=colours.style("muted")))

    def _write_session(self, log: RichLog, sid: str) -> None:
        s = self.sessions.get(sid)
        colours = palette(log)
        if s is None:
            write(log, Text(f"   session {sid}: transcript no longer kept", style=colours.style("muted")))
            return
        write(log, Text(f"   received in session {sid} ({s.protocol}, peer {s.client})", style="italic"))
        lines = _dialogue(s.lines)
        hidden = len(lines) - SESSION_LINES
        # a long dialogue (STARTTLS says EHLO twice): its start, and its end, where the
        # transaction and the 250 with the queue ID are
        for i, line in enumerate(lines[:SESSION_HEAD] + lines[SESSION_HEAD + hidden:] if hidden > 0 else lines):
            if hidden > 0 and i == SESSION_HEAD:
                write(log, Text(f"     ... {hidden} more lines in the Dialogues panel", style=colours.style("muted")))
            style = colours.style("client" if line.direction == "client" else "server")
            write(log, Text(f"     {'C' if line.direction == 'client' else 'S'}: {line.text}", style=style))


def _dialogue(lines: Iterable[Line]) -> list[Line]:
    """A session's commands and replies: not the lab's remarks, nor the message typed after a
    354 (up to its "." line; the Dialogues panel shows it)."""
    kept: list[Line] = []
    message = False
    for line in lines:
        if line.direction == "server":
            message = line.text.startswith("354")
        elif line.direction == "client" and message:
            message = line.text != "."
            if message:
                continue
        if line.direction != "note":
            kept.append(line)
    return kept
