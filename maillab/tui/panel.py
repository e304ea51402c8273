"""What every tab of the TUI shares: the batch of events it is fed, and error containment.

The app drains the bus a dozen times a second and hands each panel one
`Batch`; a panel folds it into its state (`feed`) and redraws only when it
is on screen (`flush`, and `show` when it comes on screen), so hidden panels
cost almost nothing in a flood.

A panel never takes the lab down: every entry point the app calls goes
through `Panel.safe`, and actions and handlers are wrapped with `@guarded`.
A bug shows up as a red line at the top of the panel (the traceback goes to
`<state>/log/tui-errors.log`) while the lab and the other panels go on; a
refused admin request (`UserError`) is a notification, not a crash.
"""

from __future__ import annotations

import functools
import inspect
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.widgets import Log, RichLog, Static

from ..base.errors import UserError
from ..base.events import Event
from .rowlist import RowList
from .sessions import Changes

if TYPE_CHECKING:
    from ..lab.supervisor import Lab
    from .journey import JourneyIndex
    from .metrics import Monitor
    from .sessions import SessionBook

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


@dataclass(slots=True)
class Batch:
    """The events of one frame, with what the shared models made of them."""
    events: list[Event]
    sessions: Changes = field(default_factory=Changes)
    deliveries: int = 0        # final deliveries the journey index learnt of
    _types: set[type] | None = field(default=None, init=False, repr=False)

    def has(self, *kinds: type[Event]) -> bool:
        """Whether any event is one of `kinds` (a flood frame holds thousands: the types are
        gathered once, and each panel asks about a few of them)."""
        if self._types is None:
            self._types = {type(e) for e in self.events}
        return any(issubclass(t, kinds) for t in self._types)

    def of(self, *kinds: type[Event]) -> list[Event]:
        """The events of `kinds`, in order."""
        return [e for e in self.events if isinstance(e, kinds)] if self.has(*kinds) else []


class Hint(Static):
    """A panel's line of help or status, changed often: `show(text)` repaints it, and asks for a
    layout of the screen (which costs a full redraw) only when its height may change."""

    DEFAULT_CLASSES = "hint"

    def __init__(self, text: str = "", *, id: str | None = None) -> None:
        super().__init__(text, id=id, markup=False)
        self.text = text

    def show(self, text: str) -> None:
        if text == self.text:
            return
        width = self.content_region.width
        same_height = width > 0 and self._lines(self.text, width) == self._lines(text, width)
        self.text = text
        self.update(text, layout=not same_height)

    def _lines(self, text: str, width: int) -> int:
        return len(Text(text).wrap(self.app.console, width))


def write(log: RichLog, text: Any) -> None:
    """Write to a RichLog wrapped at its own width (not the console's, which may be narrower)."""
    width = log.scrollable_content_region.width
    log.write(text, width=width if width > 0 else None)


FLUSH_LINES = 300       # lines a Log gets in one frame, at most: a flood is summarised, not drawn


def append_lines(log: Log, items: Sequence[T], skipped: str, line: Callable[[T], str] = str) -> None:
    """Append the lines of `items` (`line` makes one) to a Log, only the last FLUSH_LINES of
    them, so only those are made; `skipped` ("{n} lines not shown") stands for the others."""
    lines = [line(item) for item in items[-FLUSH_LINES:]]
    if len(items) > FLUSH_LINES:
        lines.insert(0, f"… {skipped.format(n=len(items) - FLUSH_LINES)}")
    log.write_lines(lines)


def guarded(method: F) -> F:
    """Run a panel's action or handler so that an exception stays inside the panel."""
    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def run_async(self: "Panel", *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except UserError as e:
                self.app.notify(str(e), severity="error", title="refused")
            except Exception as e:
                self.crashed(e)
            return None
        return run_async  # type: ignore[return-value]

    @functools.wraps(method)
    def run(self: "Panel", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except UserError as e:
            self.app.notify(str(e), severity="error", title="refused")
        except Exception as e:
            self.crashed(e)
        return None
    return run  # type: ignore[return-value]


@dataclass(frozen=True)
class PanelContext:
    """What the app hands every panel: the lab, the models the app folds the event stream into
    (sessions, journeys, the monitor's figures) and a way to ask which panel is on screen.
    Panels sit below the app: they get this, they never import the app."""
    lab: "Lab"
    sessions: "SessionBook"
    journeys: "JourneyIndex"
    monitor: "Monitor"
    active_panel: Callable[[], "Panel"]


class Panel(Vertical):
    """A tab of the TUI.  Subclasses set TITLE, HELP and COMMANDS, and override
    `compose_panel`, `feed` and `flush` (and `tick`, once a second on screen; `show`)."""

    TITLE: ClassVar[str] = ""
    HELP: ClassVar[str] = ""               # Markdown for the help screen; `{ports.smtp}` is the lab's port
    COMMANDS: ClassVar[list[tuple[str, str, str]]] = []   # (palette title, help, action name)

    DEFAULT_CSS = """
    Panel { height: 1fr; }
    Panel > .panel-error { display: none; background: $error 30%; color: $text; height: auto; padding: 0 1; }
    Panel > .panel-error.-shown { display: block; }
    Panel .hint { color: $foreground 75%;   /* palette.MUTED */ height: auto; padding: 0 1; }
    """

    presenter: reactive[bool] = reactive(False, init=False)

    def __init__(self, ctx: PanelContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.lab = ctx.lab
        self.errors = 0
        self._last_notice = 0.0
        self._restyle_due = False

    def help_text(self) -> str:
        """HELP with the lab's actual ports (its `--port-offset` applied)."""
        return self.HELP.format(ports=self.lab.ports)

    def compose(self) -> ComposeResult:
        yield Static("", classes="panel-error", markup=False)
        yield from self.compose_panel()

    def compose_panel(self) -> ComposeResult:
        yield from ()

    # --- what the app calls ----------------------------------------------------
    def feed(self, batch: Batch) -> None:
        """Fold a batch of events into this panel's state (called for every panel)."""

    def flush(self) -> None:
        """Bring the widgets up to date (called when the panel is on screen)."""

    def tick(self) -> None:
        """Once a second while on screen: countdowns, periodic refreshes."""

    def show(self) -> None:
        """The panel just came on screen: draw it up to date, once."""
        self.flush()

    def focus_main(self) -> None:
        """Give the keyboard to the panel's main widget."""

    def restyle(self) -> None:
        """Redraw what was written in the colours of another theme (`maillab.tui.palette`)."""

    def theme_changed(self, shown: bool) -> None:
        """The theme changed: restyle now if on screen, else when next shown (`restyle_if_due`)."""
        if shown:
            self.restyle()
        else:
            self._restyle_due = True

    def restyle_if_due(self) -> None:
        if self._restyle_due:
            self._restyle_due = False
            self.restyle()

    def watch_presenter(self, presenter: bool) -> None:
        self.set_class(presenter, "-presenter")
        for table in self.query(RowList):
            table.set_presenter(presenter)         # fewer columns: those the table may do without

    def safe(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as e:
            self.crashed(e)
            return None

    def crashed(self, error: BaseException) -> None:
        self.errors += 1
        text = "".join(traceback.format_exception(error))
        try:
            log = self.lab.state.log_dir / "tui-errors.log"
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} panel {self.TITLE}\n{text}")
            where = f"; traceback in {log}"
        except OSError:
            where = ""
        try:
            banner = self.query_one(".panel-error", Static)
        except NoMatches:        # not composed yet: the notification says it
            banner = None
        if banner is not None:
            banner.update(f"⚠ {self.TITLE} panel error ({self.errors}): {type(error).__name__}: {error}"
                          f" — the lab keeps running{where}")
            banner.add_class("-shown")
        now = time.monotonic()
        if now - self._last_notice > 10:
            self._last_notice = now
            self.app.notify(f"{self.TITLE}: {type(error).__name__}: {error}", severity="error",
                            title="panel error (the lab keeps running)")
