"""Modal screens the panels ask questions with: a small form, a yes/no, the help.

`FormScreen` shows labelled fields (free text or a fixed choice) and returns
a dict of their values, or None when cancelled (Escape).  Enter in the last
field, or the OK button, submits.  `ConfirmScreen` returns True or False.
`HelpScreen` shows Markdown and closes on Escape, q or ?.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, Select


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    label: str
    value: str = ""
    choices: tuple[str, ...] = ()     # a Select instead of an Input


_MODAL_CSS = """
FormScreen, ConfirmScreen, HelpScreen { align: center middle; }
.dialog { width: 70; max-width: 95%; height: auto; max-height: 90%; border: thick $accent;
          background: $surface; padding: 1 2; overflow-y: auto; }
.dialog Label { width: 100%; text-wrap: wrap; }
.dialog .title { text-style: bold; margin-bottom: 1; }
.dialog Label.field { margin-top: 1; }
.dialog .buttons { height: auto; margin-top: 1; align-horizontal: right; }
.dialog .buttons Button { margin-left: 2; }
.dialog .buttons Button.-primary { color: auto 100%; }   /* 87%: 3.8:1 on textual-dark's blue */
.dialog MarkdownH1, .dialog MarkdownH2, .dialog MarkdownTableContent > .header { color: $text-primary; }
"""


class FormScreen(ModalScreen[dict[str, str] | None]):
    DEFAULT_CSS = _MODAL_CSS
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: list[Field], ok: str = "OK") -> None:
        super().__init__()
        self.form_title = title
        self.fields = fields
        self.ok = ok

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.form_title, classes="title")
            for f in self.fields:
                yield Label(f.label, classes="field")
                if f.choices:
                    yield Select([(c, c) for c in f.choices], value=f.value or f.choices[0],
                                 allow_blank=False, id=f"field-{f.name}")
                else:
                    yield Input(f.value, id=f"field-{f.name}")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.ok, id="ok", variant="primary")

    def values(self) -> dict[str, str]:
        out = {}
        for f in self.fields:
            widget = self.query_one(f"#field-{f.name}")
            out[f.name] = str(widget.value) if isinstance(widget, (Input, Select)) else ""
        return out

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(self.values())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.values() if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = _MODAL_CSS
    BINDINGS = [Binding("escape,n", "answer(False)", "No"), Binding("y", "answer(True)", "Yes")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="title")
            with Horizontal(classes="buttons"):
                yield Button("No", id="no")
                yield Button("Yes", id="yes", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = _MODAL_CSS + """
    HelpScreen .dialog { width: 100; height: 90%; }
    HelpScreen VerticalScroll { height: 1fr; }
    """
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            with VerticalScroll():
                yield Markdown(self.markdown)
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
