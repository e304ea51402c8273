"""The Mail screen's dialogs: pick an identity, compose a message, review it before sending.

`IdentityScreen` returns the chosen `Identity`.  `ComposeScreen` edits a
`Draft` — To/Cc/Bcc with address completion (the world's users and recent
correspondents), Subject, attachments by path, format=flowed or not, the body in a text area or in
`$EDITOR` (Ctrl+E) — and returns ("review", draft) or ("draft", draft) to
save it in Drafts, None when cancelled.  `ReviewScreen` shows what is about
to happen (`mua.review`): the envelope beside the header block, the dialogue
the client will have, and the MX each domain's mail will reach by which DNS
answers; it returns True to send.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static, TextArea

from ...mua.compose import Attachment, Draft
from ...mua.identity import Identity
from ...mua.review import Review, Route

MAX_ATTACHMENT = 25 * 1024 * 1024

_CSS = """
IdentityScreen, ComposeScreen, ReviewScreen { align: center middle; }
.mail-dialog { width: 100; max-width: 98%; height: auto; max-height: 96%; border: thick $accent;
               background: $surface; padding: 0 1; }
.mail-dialog .title { text-style: bold; }
.mail-dialog Input { height: 3; }
.mail-dialog .row { height: 3; }
.mail-dialog .row Label { width: 9; padding-top: 1; }
.mail-dialog .row Input { width: 1fr; }
.mail-dialog TextArea { height: 10; min-height: 4; }
.mail-dialog .buttons { height: 3; align-horizontal: right; }
.mail-dialog .buttons Button { margin-left: 1; }
.mail-dialog .error { color: $text-error; }
ReviewScreen .columns { height: auto; }
ReviewScreen .columns > Static { width: 1fr; border: round $accent; padding: 0 1; }
ReviewScreen VerticalScroll { height: auto; max-height: 80%; }
"""


class IdentityScreen(ModalScreen[Identity | None]):
    DEFAULT_CSS = _CSS
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, choices: list[Identity]) -> None:
        super().__init__()
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="mail-dialog"):
            yield Label("Who are you? (the lab knows every user's password)", classes="title")
            yield OptionList(*(f"{i.from_header}  — mail on {i.host}" for i in self.choices), id="identities")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.choices[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


class AddressSuggester(Suggester):
    """Completes the last address of a comma-separated list from the addresses known."""

    def __init__(self, known: list[str]) -> None:
        super().__init__(use_cache=False, case_sensitive=False)
        self.known = known

    async def get_suggestion(self, value: str) -> str | None:
        head, comma, last = value.rpartition(",")
        typed = last.lstrip()
        if not typed:
            return None
        for address in self.known:
            if address.lower().startswith(typed.lower()) or \
                    address.lower().split("<")[-1].startswith(typed.lower()):
                return f"{head}{comma}{' ' if comma else ''}{address}"
        return None


def _split(value: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in value.split(",") if a.strip())


class ComposeScreen(ModalScreen[tuple[str, Draft] | None]):
    DEFAULT_CSS = _CSS
    BINDINGS = [Binding("escape", "cancel", "Cancel"),      # priority: Input and TextArea bind ctrl+e/ctrl+d too
                Binding("ctrl+e", "editor", "$EDITOR", priority=True),
                Binding("ctrl+r", "review", "Review & send", priority=True),
                Binding("ctrl+d", "save_draft", "Save draft", priority=True)]

    def __init__(self, draft: Draft, known: list[str], title: str = "New message") -> None:
        super().__init__()
        self.draft = draft
        self.known = known
        self.heading = title

    def compose(self) -> ComposeResult:
        d = self.draft
        suggest = AddressSuggester(self.known)
        with Vertical(classes="mail-dialog"):
            yield Label(f"{self.heading} — from {d.sender}", classes="title")
            for name, value in (("To", ", ".join(d.to)), ("Cc", ", ".join(d.cc)), ("Bcc", ", ".join(d.bcc))):
                with Horizontal(classes="row"):
                    yield Label(name)
                    yield Input(value, id=f"compose-{name.lower()}", suggester=suggest,
                                placeholder="addresses, comma-separated (Tab/→ completes)")
            with Horizontal(classes="row"):
                yield Label("Subject")
                yield Input(d.subject, id="compose-subject")
            with Horizontal(classes="row"):
                yield Label("Attach")
                yield Input(", ".join(a.filename for a in d.attachments) if d.attachments else "",
                            id="compose-attach", placeholder="file paths, comma-separated")
            yield TextArea(d.body, id="compose-body", soft_wrap=True)
            yield Static("", id="compose-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Checkbox("format=flowed", d.flowed, id="compose-flowed",
                               tooltip="RFC 3676: long lines go as soft breaks a reader may re-wrap")
                yield Button("Cancel", id="cancel")
                yield Button("Save draft", id="draft")
                yield Button("Review & send", id="review", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#compose-to" if not self.draft.to else "#compose-body").focus()

    def current(self) -> Draft:
        """The draft as the fields say now; ValueError for an attachment that cannot be read."""
        value = lambda name: self.query_one(f"#compose-{name}", Input).value  # noqa: E731
        attachments = list(a for a in self.draft.attachments if a.data)
        carried = {a.filename for a in attachments}
        for path in _split(value("attach")):
            if path in carried:
                continue
            file = Path(path).expanduser()
            try:
                if file.stat().st_size > MAX_ATTACHMENT:
                    raise ValueError(f"{path}: bigger than {MAX_ATTACHMENT >> 20} MB")
                attachments.append(Attachment(file.name, file.read_bytes()))
            except OSError as e:
                raise ValueError(f"attachment {path}: {e.strerror}") from None
        return Draft(self.draft.sender, _split(value("to")), _split(value("cc")), _split(value("bcc")),
                     value("subject"), self.query_one("#compose-body", TextArea).text, tuple(attachments),
                     self.draft.headers, self.draft.in_reply_to, self.draft.references,
                     self.query_one("#compose-flowed", Checkbox).value)

    def _finish(self, how: str) -> None:
        try:
            draft = self.current()
        except ValueError as e:
            self.query_one("#compose-error", Static).update(str(e))
            return
        if how == "review" and not (draft.to or draft.cc or draft.bcc):
            self.query_one("#compose-error", Static).update("No recipient: fill in To, Cc or Bcc.")
            return
        self.dismiss((how, draft))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self._finish(event.button.id or "review")

    def action_review(self) -> None:
        self._finish("review")

    def action_save_draft(self) -> None:
        self._finish("draft")

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_editor(self) -> None:
        """Edit the body in $EDITOR (or $VISUAL, else vi), the TUI suspended meanwhile."""
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        area = self.query_one("#compose-body", TextArea)
        with tempfile.NamedTemporaryFile("w+", suffix=".txt", encoding="utf-8", delete=False) as f:
            f.write(area.text)
            path = f.name
        try:
            with self.app.suspend():
                subprocess.run([*shlex.split(editor), path], check=False)
            area.text = Path(path).read_text(encoding="utf-8", errors="replace")
        except (OSError, ValueError) as e:
            self.query_one("#compose-error", Static).update(f"$EDITOR {editor}: {e}")
        finally:
            Path(path).unlink(missing_ok=True)


class ReviewScreen(ModalScreen[bool]):
    DEFAULT_CSS = _CSS
    BINDINGS = [Binding("escape", "answer(False)", "Back"), Binding("ctrl+s", "answer(True)", "Send")]

    def __init__(self, review: Review, routes: list[Route]) -> None:
        super().__init__()
        self.review = review
        self.routes = routes

    def compose(self) -> ComposeResult:
        r = self.review
        envelope = ["The envelope (what SMTP carries)", "", f"MAIL FROM:<{r.mail_from}>",
                    *(f"RCPT TO:<{rcpt}>" + ("   ← Bcc" if rcpt in r.bcc else "") for rcpt in r.rcpt_to)]
        header = ["The header (what the recipients read)", "", *r.header]
        if r.bcc:
            header += ["", f"(no Bcc field: {', '.join(r.bcc)} stay hidden)"]
        routes = ["Where it goes next: the submission host asks the lab DNS", ""]
        for route in self.routes:
            routes += [f"{route.domain} ({', '.join(route.recipients)}):", *(f"  {a}" for a in route.answers),
                       f"  → {route.target}"]
        with Vertical(classes="mail-dialog"):
            yield Label(f"Review before sending — {r.size} octets", classes="title")
            with VerticalScroll():
                with Horizontal(classes="columns"):
                    yield Static("\n".join(envelope), id="review-envelope", markup=False)
                    yield Static("\n".join(header), id="review-header", markup=False)
                yield Static("\n".join(["The dialogue about to happen", "", *r.dialogue]), id="review-dialogue",
                             markup=False)
                yield Static("\n".join(routes), id="review-routes", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Back", id="back")
                yield Button("Send", id="send", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#send", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "send")

    def action_answer(self, send: bool) -> None:
        self.dismiss(send)
