"""The protocol X-ray: what the Mail screen's client says on the wire, live, each line explained.

Every line the MUA's SMTP, IMAP or POP3 client sends or reads reaches
`XRay.line(protocol, direction, text)` as it happens; each is written with
who said it (C: / S:) and, under it, what it means (the Dialogues panel's
explain mode: `explain.Explainer`, one per protocol session).  A user action
(`XRay.action("open INBOX")`) heads the lines it caused, so the student sees
that opening a folder is a SELECT and a FETCH.

A long answer stays readable and cheap: after SHOWN_PER_COMMAND server lines
in a row (a FETCH of 10,000 messages is 10,000 lines) the rest are counted,
not drawn, and one line says how many there were when the client speaks
next; a line longer than LONGEST characters is cut, saying how much.
"""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widgets import RichLog

from ..explain import Explainer
from ..palette import palette
from ..panel import write

MAX_LINES = 2000
SHOWN_PER_COMMAND = 20
LONGEST = 400
DIRECTIONS = {"out": "client", "in": "server", "client": "client", "server": "server"}


class XRay(RichLog):
    """A RichLog of the client's dialogue, explained."""

    DEFAULT_CSS = "XRay { height: 1fr; border-top: solid $accent; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=True, markup=False, **kwargs)  # type: ignore[arg-type]
        self._explainers: dict[str, Explainer] = {}
        self.lines_seen: deque[str] = deque(maxlen=10 * MAX_LINES)   # the raw lines (tests look)
        self._in_a_row = 0                    # server lines since the client last spoke
        self._held = 0                        # of those, not drawn

    def session(self, protocol: str) -> None:
        """A new connection of `protocol` ("smtp", "imap", "pop3", "smtps", ...): a fresh explainer."""
        self._explainers[_family(protocol)] = Explainer(protocol)

    def action(self, what: str) -> None:
        self._release()
        write(self, Text(f"▶ {what}", style="bold reverse"))

    def line(self, protocol: str, direction: str, text: str) -> None:
        role = DIRECTIONS.get(direction, "note")
        family = _family(protocol)
        explainer = self._explainers.setdefault(family, Explainer(protocol))
        prefix = {"client": "C: ", "server": "S: "}.get(role, "   ")
        self.lines_seen.append(f"{prefix}{text}")
        if role == "server":
            self._in_a_row += 1
            if not _completes(text):
                if self._in_a_row > SHOWN_PER_COMMAND:
                    self._held += 1
                    return
            else:
                self._release()
        else:
            self._release()
        colours = palette(self)
        shown = text if len(text) <= LONGEST else f"{text[:LONGEST]}… ({len(text) - LONGEST} more characters)"
        rows = [Text(prefix, style=colours.style(role)).append(shown, style=colours.style(role)
                                                               if role == "note" else "")]
        for note in explainer.feed(role, text) if role != "note" else []:
            rows.append(Text(f"     {note}", style=colours.style("warning" if note.warning else "explain")))
        write(self, Text("\n").join(rows))


    def _release(self) -> None:
        """Say how many server lines went undrawn, if any did; the client speaks again."""
        if self._held:
            write(self, Text(f"   … and {self._held} more lines like these", style=palette(self).style("note")))
        self._in_a_row = self._held = 0


def _completes(text: str) -> bool:
    """A tagged completion ("M0012 OK ...", "+OK", "250 ..."): always drawn, however long the answer."""
    head = text.split(" ", 2)
    return not text.startswith("* ") and len(head) > 1 and head[1] in ("OK", "NO", "BAD")


def _family(protocol: str) -> str:
    p = protocol.lower()
    return "imap" if p.startswith("imap") else "pop3" if p.startswith("pop3") else "smtp"
