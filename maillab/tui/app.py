"""The Textual app: the whole lab on the app's own event loop, in eight live panels.

`MailLabApp(lab)` starts the lab after the first frame, in a worker on the
same loop, and stops it on quit (servers closed, spool kept).  It owns the
shared models — `SessionBook` (dialogues), `JourneyIndex` (what happened to
each queue ID), `Monitor` (per-second counts) — and one bus subscription.

Events are coalesced per frame: a timer drains the bounded subscription
`PUMP_HZ` times a second, folds the batch into the models once, hands it to
every panel (`Panel.feed`) and redraws only the panel on screen
(`Panel.flush`) — in a flood only `1 / FLOOD_FRAME` times a second: drawing
is what costs, and the lab shares this loop.  A second timer moves the lab
clock in the header, closes the monitor's second and refreshes countdowns.
A flood drops the oldest events of the subscription (counted on the Monitor
panel), never the lab's.  In a flood the overload valve (maillab.net.admission)
holds new SMTP sessions back while the loop runs late, and for a moment after
each key press, so a person's keys are answered before new work.

Every action is a key binding, a command palette entry (Ctrl+P) and a line
of the help screen (?); panels declare theirs in `COMMANDS`.
"""

from __future__ import annotations

import gc
import os
import time
import traceback
from functools import partial
from typing import Any, Iterable

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.css.query import NoMatches
from textual.events import Event as UIEvent
from textual.events import Key
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widgets import Header, TabbedContent, TabPane

from ..base.clock import parse_duration
from ..base.errors import UserError
from ..lab.supervisor import Lab
from ..net.admission import LagValve
from .fmt import duration, long_stamp
from .forms import Field, FormScreen, HelpScreen
from .header import LabHeader
from .journey import JourneyIndex
from .keybar import KeyBar
from .mail.screen import MailScreen
from .metrics import Monitor, disk_usage
from .palette import MUTED
from .panel import Batch, Panel, PanelContext
from .panels import PANELS
from .sessions import SessionBook

PUMP_HZ = 15
FLOOD_EVENTS = 50                # events in one frame that make it a flood...
FLOOD_FRAME = 0.5                # ...when the panel on screen is redrawn only this often (s)
SUBSCRIPTION = 50_000            # events buffered between two frames, at most
DISK_EVERY = 2                   # seconds between two samples of the disk usage, at least...
DISK_SHARE = 20                  # ...and 20 times what the last one took (a big spool: less often)
SPEEDS = (1.0, 10.0, 60.0, 600.0, 3600.0)
GC_OLD = 100                     # middle collections between two full ones (CPython: 10)
PRESENTER_TITLE = " · PRESENTER MODE (p: off)"
KEY_HOLD = 0.05                  # seconds new SMTP sessions wait after a key press (maillab.net.admission)

INTRO = """\
# maillab — the lab you can watch

A small Internet of mail runs inside this window, on the loopback interface:
a DNS server for every domain of the world, one MTA per host, Maildirs, POP3.
Everything you do from another terminal — `telnet 127.0.0.1 {smtp}`, `swaks`,
`dig @127.0.0.1 -p {dns} syr.edu MX` — shows up here as it happens.

| key | does |
|---|---|
| `1` … `8` | show a panel (also: click its tab) |
| `Ctrl+P` | the command palette: every action, searchable |
| `?` / `F1` | this help |
| `t` | dark / light theme |
| `p` | presenter mode: bigger, simpler, explained — for a projector |
| `>` `<` `a` | lab clock faster, slower, jump ahead (days of retries in minutes); on the DNS panel `a` adds a record |
| `m` | the Mail screen: the lab's own mail client (IMAP, submission), its protocol X-rayed |
| `q` | quit: the servers stop, queued mail stays in the spool |
"""


def _panel_id(panel: type[Panel]) -> str:
    return panel.TITLE.lower()


class MailLabApp(App[None]):
    TITLE = "maillab"
    # the lab clock, changed every second: only the header shows it (Textual repaints the screen)
    sub_title: Reactive[str] = Reactive("", compute=False, repaint=False)
    CSS = """
    #tabs { height: 1fr; }
    TabPane { padding: 0; }
    Screen.-presenter Tab { text-style: bold; }
    Screen.-presenter RowList, Screen.-presenter RichLog, Screen.-presenter Log,
    Screen.-presenter .hint, Screen.-presenter Input, Screen.-presenter #metrics-view { text-style: bold; }
    Tabs Tab { color: $foreground 75%; }
    Input > .input--placeholder { color: $foreground 70%; }
    Toast > .toast--title { color: $foreground; }   /* $text-warning & co. are ~3.5:1 on a toast */
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("t", "toggle_theme", "Theme"),
        Binding("p", "toggle_presenter", "Presenter"),
        *(Binding(str(n), f"show_panel('{_panel_id(p)}')", p.TITLE, show=False)
          for n, p in enumerate(PANELS, 1)),
        Binding("greater_than_sign", "clock_faster", "Clock faster", show=False),
        Binding("less_than_sign", "clock_slower", "Clock slower", show=False),
        Binding("a", "clock_advance", "Clock ahead", show=False),
        Binding("m", "mail", "Mail"),
    ]

    def __init__(self, lab: Lab, presenter: bool = False, freeze_gc: bool = False) -> None:
        super().__init__()
        self.freeze_gc = freeze_gc       # a process of its own: see _start_lab
        if "TEXTUAL_ANIMATIONS" not in os.environ:
            self.animation_level = "none"     # a sliding tab underline repaints 20 times per switch
        self.lab = lab
        self.startup_error = ""
        self.lab_running = False
        self.presenter = presenter
        self.sessions = SessionBook()
        self.journeys = JourneyIndex({h.name: h.address for h in lab.world.hosts.values()})
        self.monitor = Monitor()
        self._panel_context = PanelContext(lab, self.sessions, self.journeys, self.monitor,
                                           lambda: self.active_panel)
        self._sub = lab.bus.subscribe(maxlen=SUBSCRIPTION)
        self._panels: dict[str, Panel] = {}
        self._disk_sample: int | None = None
        self._disk_next = 0.0            # monotonic time of the next sample
        self._last_flush = 0.0
        self._valve: LagValve | None = None
        self._last_notice = 0.0

    # --- layout --------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield LabHeader()
        # Kept from here, not looked up at mount: children mount (and may ask which panel is
        # shown) before the app's on_mount runs; until the tabs mount, the first panel is shown.
        self._tabs = TabbedContent(id="tabs", initial=_panel_id(PANELS[0]))
        with self._tabs:
            for n, kind in enumerate(PANELS, 1):
                pid = _panel_id(kind)
                with TabPane(f"{n} {kind.TITLE}", id=pid):
                    panel = kind(self._panel_context, id=f"{pid}-panel")
                    self._panels[pid] = panel
                    yield panel
        yield KeyBar()

    def on_mount(self) -> None:
        self.title = f"maillab · world {self.lab.world.name}"
        self._clock_title()
        self.set_interval(1 / PUMP_HZ, self._pump)
        self.set_interval(1.0, self._tick)
        self.theme_changed_signal.subscribe(self, lambda _theme: self.call_after_refresh(self._restyle))
        self.run_worker(self._start_lab(), group="lab", exit_on_error=False)
        if self.presenter:
            self._apply_presenter()
        self._focus_active()

    async def _start_lab(self) -> None:
        try:
            await self.lab.start()
        except (UserError, OSError) as e:
            self.startup_error = str(e)
            self.exit()
            return
        except Exception as e:       # a bug: say it in one line, never leave a half-started lab
            self.startup_error = f"internal error while starting the lab: {type(e).__name__}: {e}"
            self.exit()
            return
        self.lab_running = True
        if self.freeze_gc:
            # A full collection walks every live object: Textual's widgets and the lab built at
            # start-up (frozen: never walked again), and what the panels hold.  In a flood it
            # paused the screen 140-180 ms every 2 s; a tenth as often, key presses stay quick.
            gc.freeze()
            young, middle, _old = gc.get_threshold()
            gc.set_threshold(young, middle, GC_OLD)
        assert self.lab.ctx is not None
        self._valve = LagValve(self.lab.ctx.admission)
        self._valve.start()

    async def on_event(self, event: UIEvent) -> None:
        if isinstance(event, Key) and not event.is_forwarded and self._valve is not None:
            self._valve.hold(KEY_HOLD)          # the key's answer first, new SMTP sessions after
        await super().on_event(event)

    async def on_unmount(self) -> None:
        self._sub.close()
        if self._valve is not None:
            self._valve.stop()
        if self.lab_running:
            self.lab_running = False
            await self.lab.stop()

    @property
    def panels(self) -> list[Panel]:
        return list(self._panels.values())

    @property
    def active_panel(self) -> Panel:
        return self._panels[self._tabs.active or _panel_id(PANELS[0])]

    def _shown_panel(self) -> Panel | None:
        """The panel on screen, for the timers; None while the app closes (its widgets are gone)."""
        try:
            return self.active_panel
        except NoMatches:
            return None

    # --- the event pump and the clock tick --------------------------------------------
    def _pump(self) -> None:
        if not self.is_running:     # closing: Textual stops the app, then takes the screens down,
            return                  # and a timer may fire in between
        events = self._sub.drain()
        if self._sub.dropped:
            self.monitor.dropped += self._sub.dropped
            self._sub.dropped = 0
        if events:
            batch = Batch(events)
            try:
                batch.sessions = self.sessions.ingest(events)
                batch.deliveries = self.journeys.ingest(events)
                self.monitor.ingest(events)
            except Exception as e:
                self.crashed(e)
            for panel in self._panels.values():
                panel.safe(panel.feed, batch)
        now = time.monotonic()
        if len(events) < FLOOD_EVENTS or now - self._last_flush >= FLOOD_FRAME:
            self._last_flush = now
            shown = self._shown_panel()
            if shown is not None:
                shown.safe(shown.flush)

    def _tick(self) -> None:
        if not self.is_running:
            return
        self._clock_title()
        if not self.lab_running:
            return
        held = self.lab.ctx.admission.waited if self.lab.ctx is not None else 0
        self.monitor.tick(self.lab.queue_depth(), self._disk_sample, held)
        self._disk_sample = None
        if time.monotonic() >= self._disk_next:
            self._disk_next = float("inf")          # until this sample is done
            self.run_worker(self._sample_disk, thread=True, group="disk", exclusive=True, exit_on_error=False)
        shown = self._shown_panel()
        if shown is not None:
            shown.safe(shown.tick)

    def _sample_disk(self) -> None:
        state, started = self.lab.state, time.monotonic()
        try:
            self._disk_sample = disk_usage(state.root / "spool", state.root / "mail")
        finally:
            took = time.monotonic() - started
            self._disk_next = time.monotonic() + max(DISK_EVERY, DISK_SHARE * took)

    def _clock_title(self) -> None:
        clock = self.lab.clock
        self.sub_title = f"lab clock {long_stamp(clock.now())} ×{clock.speed:g}"

    def crashed(self, error: BaseException) -> None:
        """A bug outside any panel: logged and shown; the lab goes on."""
        try:
            with open(self.lab.state.log_dir / "tui-errors.log", "a", encoding="utf-8") as f:
                f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} app\n"
                        + "".join(traceback.format_exception(error)))
        except OSError:
            pass
        now = time.monotonic()
        if now - self._last_notice > 10:
            self._last_notice = now
            self.notify(f"{type(error).__name__}: {error}", severity="error",
                        title="TUI error (the lab keeps running)")

    # --- panels ----------------------------------------------------------------------
    def action_show_panel(self, pid: str) -> None:
        self._tabs.active = pid
        self._focus_active()          # at once: the next key must reach the new panel

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        panel = self._panels.get(event.pane.id or "")
        if panel is not None and panel is self.active_panel:
            panel.safe(panel.restyle_if_due)
            if self.lab_running:
                panel.safe(panel.show)
            self.call_after_refresh(self._focus_active)

    def _focus_active(self) -> None:
        """Keys go to the panel on screen.  Focus inside another pane would switch tabs
        (TabbedContent follows focus), so a late call for a panel no longer shown does nothing."""
        panel = self.active_panel
        focused = self.focused
        if focused is None or panel not in focused.ancestors_with_self:
            panel.focus_main()

    async def _panel_command(self, pid: str, action: str) -> None:
        self.action_show_panel(pid)
        await self._panels[pid].run_action(action)

    # --- app-wide actions ----------------------------------------------------------------
    def action_help(self) -> None:
        parts = [INTRO.format(smtp=self.lab.ports.smtp, dns=self.lab.ports.dns)]
        for n, panel in enumerate(self._panels.values(), 1):
            parts.append(f"## {n} · {panel.TITLE}\n\n{panel.help_text()}")
        self.push_screen(HelpScreen("\n".join(parts)))

    def format_title(self, title: str, sub_title: str) -> Content:
        """The header's title, with the sub-title (the lab clock) readable: Textual dims it."""
        return Content.assemble(title, (" — ", MUTED), (sub_title, MUTED)) if sub_title else Content(title)

    def action_mail(self) -> None:
        if self.lab_running and not isinstance(self.screen, MailScreen):
            self.push_screen(MailScreen(self.lab))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def _restyle(self) -> None:
        """Text already written in the panels has the old theme's colours: redraw it."""
        shown = self._shown_panel()
        for panel in self._panels.values():
            panel.safe(panel.theme_changed, panel is shown)

    def action_toggle_presenter(self) -> None:
        self.presenter = not self.presenter
        self._apply_presenter()

    def _apply_presenter(self) -> None:
        """Bold text, fewer columns, Dialogues following and explained, on every panel; the header
        says so (a notification would cover the transcript)."""
        self.screen.set_class(self.presenter, "-presenter")
        self.query_one(Header).tall = self.presenter
        self.title = f"maillab · world {self.lab.world.name}" + (PRESENTER_TITLE if self.presenter else "")
        for panel in self._panels.values():
            panel.presenter = self.presenter
        self.call_after_refresh(self.active_panel.focus_main)   # a table hidden in presenter mode lost it

    def _set_speed(self, speed: float) -> None:
        try:
            self.lab.clock_speed(speed)
        except UserError as e:
            self.notify(str(e), severity="error")
            return
        self._clock_title()
        self.notify(f"lab clock ×{speed:g}" + ("" if speed == 1 else f": a minute lasts {60 / speed:.2g} s"))

    def action_clock_faster(self) -> None:
        speed = self.lab.clock.speed
        self._set_speed(next((s for s in SPEEDS if s > speed), SPEEDS[-1]))

    def action_clock_slower(self) -> None:
        speed = self.lab.clock.speed
        self._set_speed(next((s for s in reversed(SPEEDS) if s < speed), SPEEDS[0]))

    def action_clock_normal(self) -> None:
        self._set_speed(1.0)

    def action_clock_advance(self) -> None:
        fields = [Field("duration", "Jump the lab clock ahead by (90s, 5m, 4h, 1d):", "1h")]
        self.push_screen(FormScreen("Fast-forward the lab clock", fields, ok="Jump"), self._advance)

    def _advance(self, values: dict[str, str] | None) -> None:
        if not values:
            return
        try:
            seconds = parse_duration(values["duration"])
            self.lab.clock_advance(seconds)
        except (ValueError, UserError) as e:
            self.notify(str(e), severity="error")
            return
        self._clock_title()
        self.notify(f"lab clock jumped {duration(seconds)} ahead: {long_stamp(self.lab.clock.now())}; "
                    "due retries run now")

    # --- the command palette -----------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for n, (pid, panel) in enumerate(self._panels.items(), 1):
            yield SystemCommand(f"Show {panel.TITLE}", f"Switch to the {panel.TITLE} panel (key {n})",
                                partial(self.action_show_panel, pid))
        for pid, panel in self._panels.items():
            for title, help_text, action in panel.COMMANDS:
                yield SystemCommand(title, help_text, partial(self._panel_command, pid, action))
        yield SystemCommand("Clock: faster", "Run the lab clock faster (×10, ×60, ×600, ×3600)",
                            self.action_clock_faster)
        yield SystemCommand("Clock: slower", "Run the lab clock slower", self.action_clock_slower)
        yield SystemCommand("Clock: normal speed", "Run the lab clock at ×1", self.action_clock_normal)
        yield SystemCommand("Clock: jump ahead", "Fast-forward the lab clock (retries fall due)",
                            self.action_clock_advance)
        yield SystemCommand("Toggle dark / light theme", "Switch between textual-dark and textual-light",
                            self.action_toggle_theme)
        yield SystemCommand("Presenter mode", "Bigger, simpler panels with every line explained",
                            self.action_toggle_presenter)
        yield SystemCommand("Mail", "The lab's own mail client: read and send as any user, X-rayed (key m)",
                            self.action_mail)
        yield SystemCommand("Help", "What each panel shows, and its keys", self.action_help)
