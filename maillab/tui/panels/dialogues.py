"""The Dialogues panel: every SMTP, POP3 and IMAP session, and the chosen one's transcript, live.

The table lists recent sessions (started, protocol, host, peer, state); the
log below shows the selected session line by line, client and server in
different colours, with lab-clock times.  Follow mode (`f`, on at start)
always shows the newest session, so a student's telnet session appears as
they type; Enter or a click on a row picks one and ends follow mode.
Explain mode (`e`) annotates each line: what a reply code and its enhanced
code mean and which RFC section defines them, what a command asks, and AUTH
data decoded, with a warning when a password crossed the wire in the clear.
Wire mode (`w`) shows, beside the transcript (what the endpoints saw), what an
eavesdropper on the wire reads of the session (`eavesdrop.py`): the plaintext
up to STARTTLS with any password decoded, then one line for the TLS part.
"""

from __future__ import annotations

import itertools
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import RichLog

from ..fmt import stamp
from ..palette import Palette, palette
from ..panel import Batch, Hint, Panel, PanelContext, guarded, write
from ..rowlist import RowList

from ..eavesdrop import WireLine
from ..explain import Note
from ..sessions import Line, Session

TRANSCRIPT_LINES = 2_000
TABLE_ROWS = 100             # sessions listed (the book keeps more, for the Journey panel)
COLUMNS = ("started", "protocol", "host", "state", "peer")


class DialoguesPanel(Panel):
    TITLE = "Dialogues"
    HELP = """\
Every session on the wire: SMTP (port 25's stand-in {ports.smtp}, submission {ports.submission}), the
lab's own outbound hops (`smtp-out`), POP3 and IMAP.  The table shows when each
session started, its protocol, the host that serves it, the peer, and whether it
is still open.  Below, the selected session's transcript: **C:** lines are what
the client sent, **S:** lines what the server answered, *grey* lines the lab's
remarks. A message after DATA shows as the client typed it: its first lines as
they arrive, its last few once the "." ends it, a remark counting those between.

- `f` follow: always show the newest session (on at start). Type
  `telnet 127.0.0.1 {ports.smtp}` in another terminal and watch your session appear.
- `e` explain: annotate every line — reply codes (`354`, `250 2.1.5`,
  `550 5.1.1`), enhanced status codes (RFC 3463), commands, EHLO keywords — with
  the RFC section that defines them. AUTH PLAIN / LOGIN are decoded: base64 is
  not encryption, and without TLS the password crossed the wire in the clear.
- `w` wire: beside the transcript, what an eavesdropper on the wire reads:
  every line until STARTTLS, passwords sent in the clear decoded and marked,
  then one line for the TLS part (its bytes each way, none of them readable).
  Set `auth_over_plaintext = true` in a world to try it with a real password.
- `Enter` on a row: show that session (ends follow mode). `c` clears the list.
"""
    COMMANDS = [("Dialogues: follow the newest session", "Toggle follow mode", "toggle_follow"),
                ("Dialogues: explain codes and commands", "Toggle annotations with RFC references",
                 "toggle_explain"),
                ("Dialogues: the eavesdropper's view", "Beside the transcript, what the wire shows an observer",
                 "toggle_wire"),
                ("Dialogues: clear the session list", "Forget the sessions shown so far", "clear")]
    BINDINGS = [Binding("f", "toggle_follow", "Follow"), Binding("e", "toggle_explain", "Explain"),
                Binding("w", "toggle_wire", "Wire"), Binding("c", "clear", "Clear")]
    DEFAULT_CSS = """
    DialoguesPanel #sessions { height: auto; max-height: 40%; }
    DialoguesPanel #panes { height: 1fr; }
    DialoguesPanel #transcript { height: 1fr; width: 1fr; border-top: solid $accent; }
    DialoguesPanel #wire { display: none; height: 1fr; width: 1fr; border-top: solid $accent;
                           border-left: solid $accent; }
    DialoguesPanel.-wire #wire { display: block; }
    DialoguesPanel.-presenter #sessions { display: none; }
    DialoguesPanel.-presenter #transcript { border-top: none; padding: 0 2; }
    """

    follow: reactive[bool] = reactive(True, init=False)
    explain: reactive[bool] = reactive(False, init=False)
    wire: reactive[bool] = reactive(False, init=False)

    def __init__(self, ctx: PanelContext, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.book = ctx.sessions
        self.selected: str | None = None
        self._opened: list[str] = []
        self._updated: set[str] = set()
        self._forgotten: list[str] = []
        self._new_lines: list[Line] = []      # of the selected session, not yet shown
        self._redraw = False
        self._ended = False                   # the selected session closed since its last draw
        self._wire_stale = False              # the wire view of the selected session changed

    def compose_panel(self) -> ComposeResult:
        yield Hint(id="dialogues-hint")
        yield RowList(COLUMNS, id="sessions", shrink=(("state", 24), ("started", 0), ("state", 12), ("peer", 16)))
        with Horizontal(id="panes"):
            yield RichLog(id="transcript", max_lines=TRANSCRIPT_LINES, wrap=True, markup=False)
            yield RichLog(id="wire", max_lines=TRANSCRIPT_LINES, wrap=True, markup=False)

    def on_mount(self) -> None:
        self._hint()

    def focus_main(self) -> None:
        self.query_one("#sessions", RowList).focus()

    # --- state ----------------------------------------------------------------
    def feed(self, batch: Batch) -> None:
        ch = batch.sessions
        if not ch:
            return
        self._opened += ch.opened
        if len(self._opened) > self.book.max_sessions:
            del self._opened[:-self.book.max_sessions]
        self._updated |= ch.updated
        self._forgotten += ch.forgotten
        self._ended |= self.selected in ch.updated
        self._wire_stale |= self.selected in ch.wire
        if self.selected is not None and self.selected in ch.lines:
            self._new_lines += ch.lines[self.selected]
            if len(self._new_lines) > TRANSCRIPT_LINES:
                self._redraw = True
                self._new_lines.clear()

    def flush(self) -> None:
        table = self.query_one("#sessions", RowList)
        changed = bool(self._opened or self._updated or self._forgotten)
        with table.batch():                        # full: new rows in, as many out, no new size
            for sid in self._forgotten:
                table.remove(sid)
            for sid in [*self._opened[-TABLE_ROWS:], *(u for u in self._updated if u in table)]:
                s = self.book.get(sid)          # (a session trimmed from the table stays out)
                if s is not None:
                    table.upsert(sid, self._cells(s))
            table.keep_last(TABLE_ROWS)            # the cursor stays on its row, if that is kept
        self._opened, self._updated, self._forgotten = [], set(), []
        if self.follow:
            newest = self.book.newest()
            if newest is not None and newest.id != self.selected:
                self._select(newest.id)
                # only when a session is new: between two, the cursor is the user's to move
                table.move_cursor(table.row_count - 1)
        elif self.selected is not None and self.book.get(self.selected) is None:
            self._select(None)
        self._draw()
        if changed:
            self._hint()

    def tick(self) -> None:
        self._draw_wire()           # a view left undrawn before the layout gave it a width

    @staticmethod
    def _cells(s: Session) -> tuple[str, ...]:
        return stamp(s.started), s.protocol, s.host, s.state, s.client

    def _select(self, sid: str | None) -> None:
        self.selected = sid
        self._redraw = self._wire_stale = True
        self._new_lines.clear()

    # --- transcript -------------------------------------------------------------
    def _draw(self) -> None:
        """Bring the transcript and (in wire mode) the eavesdropper's view up to date."""
        self._draw_transcript()
        self._draw_wire()

    def _draw_transcript(self) -> None:
        log = self.query_one("#transcript", RichLog)
        ended, self._ended = self._ended, False
        if self._redraw:
            self._redraw = False
            self._new_lines.clear()
            log.clear()
            s = self.book.get(self.selected) if self.selected else None
            if s is None:
                write(log, Text("No session selected yet. Try: telnet 127.0.0.1 "
                               f"{self.lab.ports.smtp}", style=palette(log).style("note")))
                return
            write(log, self._heading(s, palette(log)))
            if s.dropped:
                write(log, Text(f"({s.dropped} earlier lines not kept)", style=palette(log).style("note")))
            self._write_lines(log, s, list(s.lines))
            if not s.open:
                write(log, self._ending(s, palette(log)))
        elif self._new_lines or ended:
            s = self.book.get(self.selected) if self.selected else None
            if s is not None:
                self._write_lines(log, s, self._new_lines[-len(s.lines):])
                if ended and not s.open:
                    write(log, self._ending(s, palette(log)))
            self._new_lines.clear()

    def _write_lines(self, log: RichLog, s: Session, lines: list[Line]) -> None:
        """Write the last `len(lines)` lines of `s`, explained if explain (or presenter) mode is on.

        One `write` for them all: RichLog renders each write on its own, and
        a line-by-line redraw of an explained session cost tens of milliseconds."""
        if self.explain or self.presenter:
            s.explain()
            notes = list(itertools.islice(s.notes, len(s.notes) - len(lines), None))
        else:
            notes = [()] * len(lines)
        rows: list[Text] = []
        colours = palette(log)
        for line, line_notes in zip(lines, notes):
            rows += self._rows(line, line_notes, colours)
        if rows:
            write(log, Text("\n").join(rows))

    def _draw_wire(self) -> None:
        """The eavesdropper's view of the selected session, drawn anew when it changed (it is
        short: the server publishes a bounded part of the plaintext, the rest is one line)."""
        log = self.query_one("#wire", RichLog)
        if not (self.wire and self._wire_stale) or log.scrollable_content_region.width <= 0:
            return              # (not laid out yet: it would wrap at the console's width)
        self._wire_stale = False
        log.clear()
        colours = palette(log)
        s = self.book.get(self.selected) if self.selected else None
        rows = [Text("What an eavesdropper on the wire reads", style="bold")]
        if s is None:
            rows.append(Text("No session selected yet.", style=colours.style("note")))
        elif "/smtp-out/" in s.id:
            rows.append(Text("The lab's own outbound hop: its wire is the receiving host's session.",
                             style=colours.style("note")))
        else:
            rows += [self._wire_row(line, colours) for line in s.wire_view()]
        write(log, Text("\n").join(rows))

    def _wire_row(self, line: WireLine, colours: Palette) -> Text:
        if line.kind in ("client", "server"):
            text = Text("C: " if line.kind == "client" else "S: ", style=colours.style(line.kind))
            return text.append(line.text)
        if line.kind == "secret":
            return Text(f"   ⚠ {line.text}", style=colours.style("warning") + Style(reverse=True))
        if line.kind == "lesson":
            return Text(f"⚠ {line.text}", style=colours.style("warning"))
        if line.kind == "tls":
            return Text(f"🔒 {line.text}", style=colours.style("good"))
        return Text(f"   {line.text}", style=colours.style("note"))

    @staticmethod
    def _heading(s: Session, colours: Palette) -> Text:
        text = Text()
        text.append(f"{s.id}", style="bold")
        text.append(f" — {s.protocol} on {s.host}, peer {s.client}, started {stamp(s.started)}",
                    style=colours.style("note"))
        return text

    @staticmethod
    def _ending(s: Session, colours: Palette) -> Text:
        """The transcript's last line once `s` is over: the heading is not redrawn when it closes."""
        return Text(f"— session {s.state}", style=colours.style("note"))

    def _rows(self, line: Line, notes: tuple[Note, ...], colours: Palette) -> list[Text]:
        """One transcript line as display rows: the line, its notes, a gap after a reply (presenter)."""
        text = Text()
        if not self.presenter:
            text.append(stamp(line.time) + " ", style=colours.style("muted"))
        if line.direction == "client":
            text.append("CLIENT › " if self.presenter else "C: ", style=colours.style("client"))
            text.append(line.text)
        elif line.direction == "server":
            text.append("SERVER ‹ " if self.presenter else "S: ", style=colours.style("server"))
            text.append(line.text)
        else:
            text.append("   " + line.text, style=colours.style("note"))
        rows = [text]
        indent = "          " if not self.presenter else "   "
        for note in notes:
            rows.append(Text(f"{indent}{'⚠ ' if note.warning else '↳ '}{note}",
                             style=colours.style("warning" if note.warning else "explain")))
        if self.presenter and line.direction == "server" and line.text[3:4] != "-":
            rows.append(Text(""))
        return rows

    def _hint(self) -> None:
        port = self.lab.ports.smtp
        shown = self.query_one("#sessions", RowList).row_count
        self.query_one("#dialogues-hint", Hint).show(
            f"telnet 127.0.0.1 {port} · f follow {'ON' if self.follow else 'off'} · "
            f"e explain {'ON' if self.explain else 'off'} · w wire {'ON' if self.wire else 'off'} · "
            f"{shown} of {self.book.total_opened} sessions")

    # --- reactions ---------------------------------------------------------------
    def watch_follow(self) -> None:
        self._hint()
        if self.follow:
            self._select(None)          # the next flush picks the newest session
        self.flush()

    def watch_explain(self) -> None:
        self._redraw = True
        self._hint()
        self._draw()

    def watch_wire(self) -> None:
        self.set_class(self.wire, "-wire")
        self._wire_stale = self._redraw = True       # both panes change width
        self._hint()
        self.call_after_refresh(self._draw)         # once laid out: RichLog wraps at its width then

    def watch_presenter(self, presenter: bool) -> None:
        super().watch_presenter(presenter)
        if presenter:
            self.follow = True            # the audience sees the session being typed
        self.restyle()

    def restyle(self) -> None:
        self._redraw = self._wire_stale = True
        self._draw()

    @guarded
    def on_row_list_selected(self, event: RowList.Selected) -> None:
        self.follow = False
        self._select(event.key)
        self._draw()

    @guarded
    def on_row_list_highlighted(self, event: RowList.Highlighted) -> None:
        if not self.follow and event.key != self.selected:     # in follow mode the cursor moves by itself
            self._select(event.key)
            self._draw()

    @guarded
    def action_toggle_follow(self) -> None:
        self.follow = not self.follow

    @guarded
    def action_toggle_explain(self) -> None:
        self.explain = not self.explain

    @guarded
    def action_toggle_wire(self) -> None:
        self.wire = not self.wire

    @guarded
    def action_clear(self) -> None:
        self.book.clear()
        self.query_one("#sessions", RowList).clear()
        self._opened, self._updated, self._forgotten = [], set(), []
        self._select(None)
        self._draw()
        self._hint()
