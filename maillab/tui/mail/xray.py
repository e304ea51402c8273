"""The protocol X-ray: what the Mail screen's client says on the wire, live, each line explained.

Every line the MUA's SMTP, IMAP or POP3 client sends or reads reaches
`XRay.line(protocol, direction, text)` as it happens; each is written with
who said it (C: / S:) and, under it, what it means (the Dialogues panel's
explain mode: `explain.Explainer`, one per protocol session).  A user action
(`XRay.action("open INBOX")`) heads the lines it caused, so the student sees
that opening a folder is a SELECT and a FETCH.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from ..explain import Explainer
from ..palette import palette
from ..panel import write

MAX_LINES = 2000
DIRECTIONS = {"out": "client", "in": "server", "client": "client", "server": "server"}


class XRay(RichLog):
    """A RichLog of the client's dialogue, explained."""

    DEFAULT_CSS = "XRay { height: 1fr; border-top: solid $accent; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=True, markup=False, **kwargs)  # type: ignore[arg-type]
        self._explainers: dict[str, Explainer] = {}
        self.lines_seen: list[str] = []       # the raw lines, for tests and the count in the title

    def session(self, protocol: str) -> None:
        """A new connection of `protocol` ("smtp", "imap", "pop3", "smtps", ...): a fresh explainer."""
        self._explainers[_family(protocol)] = Explainer(protocol)

    def action(self, what: str) -> None:
        write(self, Text(f"▶ {what}", style="bold reverse"))

    def line(self, protocol: str, direction: str, text: str) -> None:
        role = DIRECTIONS.get(direction, "note")
        family = _family(protocol)
        explainer = self._explainers.setdefault(family, Explainer(protocol))
        colours = palette(self)
        prefix = {"client": "C: ", "server": "S: "}.get(role, "   ")
        self.lines_seen.append(f"{prefix}{text}")
        rows = [Text(prefix, style=colours.style(role)).append(text, style=colours.style(role)
                                                               if role == "note" else "")]
        for note in explainer.feed(role, text) if role != "note" else []:
            rows.append(Text(f"     {note}", style=colours.style("warning" if note.warning else "explain")))
        write(self, Text("\n").join(rows))


def _family(protocol: str) -> str:
    p = protocol.lower()
    return "imap" if p.startswith("imap") else "pop3" if p.startswith("pop3") else "smtp"
