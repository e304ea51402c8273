"""The Hosts panel: each host of the world with its services and state; outages, chaos, STARTTLS stripping.

Rows come from `Lab.hosts_listing` (what `maillab hosts` prints); taking a
host down or up, setting chaos and stripping STARTTLS go through the same
`Lab` methods as the control socket, so the TUI and the CLI can not disagree.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from ...base.events import HostChanged, Queued, Removed
from ...lab.world import World
from ...mta.agent import CHAOS_STAGES, FAULT_MODES
from ..forms import Field, FormScreen
from ..panel import Batch, Panel, PanelContext, guarded
from ..rowlist import RowList


COLUMNS = ("host", "address", "state", "starttls", "services", "mailboxes of", "queued", "chaos")
OUTAGES = {
    "refuse": "connection refused: nothing listens (the sender tries the next MX)",
    "421": "answers 421 and closes: service not available",
    "silent": "accepts the connection and never speaks: the client times out",
    "greylist": "450 to the first try of each (client, sender, recipient): retries get through",
}


LINE_ENDINGS = {
    "lenient": "bare LF taken as typed in nc, the end of data strict",
    "strict": "bare LF normalised, the end of data strict",
    "pedantic": "a bare LF refused with 550 5.5.2",
}


def smtp_rules(world: World) -> str:
    """The world's receive settings (lab.toml [lab]), as the Hosts panel says them."""
    login = "MAIL FROM must be the login's" if world.sender_login_match else "a login may send as anyone"
    plaintext = ("on (passwords may cross the wire in the clear)" if world.auth_over_plaintext
                 else "off (logins only after TLS)")
    return (f"SMTP line endings: {world.smtp_line_endings} ({LINE_ENDINGS[world.smtp_line_endings]}) · "
            f"sender_login_match: {'on' if world.sender_login_match else 'off'} ({login}) · "
            f"auth_over_plaintext: {plaintext}")


class HostsPanel(Panel):
    TITLE = "Hosts"
    HELP = """\
Every MTA host of the world: its loopback address, its state, what listens
there (smtp {ports.smtp}; on a domain's mailbox host also submission
{ports.submission}, smtps {ports.smtps}, IMAP {ports.imap}/{ports.imaps} and POP3
{ports.pop3}/{ports.pop3s}), the domains whose mailboxes it keeps, and how many
messages wait in its queue.

- `d` takes the selected host down, in one of four ways: *refuse* (connection
  refused), *421* (service not available), *silent* (accepts and never speaks:
  the sender times out), *greylist* (450 at the first try). `u` brings it up.
  Take `smtp1.syr.edu` down and send to `syr.edu`: the mail goes to the backup MX
  `smtp2.syr.edu`, which keeps it until smtp1 is back.
- `c` sets chaos: MAIL, RCPT or DATA fail with a probability and a reply code
  (seeded, so a run replays); `C` turns it off.
- `s` strips STARTTLS on the selected host, or offers it again (column
  *starttls*): its EHLO stops listing STARTTLS, as when an attacker on the path
  cuts it out, and a sender whose TLS is only opportunistic (`may`) sends in
  plaintext while one that requires TLS (`encrypt`) defers. Nothing in SMTP
  itself tells the sender it was cheated: that is why MTA-STS (RFC 8461) and
  DANE (RFC 7672) exist, letting a domain say that its MX hosts must do TLS.
"""
    COMMANDS = [("Hosts: take the selected host down", "Simulate an outage", "down"),
                ("Hosts: bring the selected host up", "End the outage", "up"),
                ("Hosts: chaos on the selected host", "Random failures at MAIL, RCPT or DATA", "chaos"),
                ("Hosts: chaos off", "End random failures on the selected host", "chaos_off"),
                ("Hosts: strip STARTTLS on the selected host (or offer it again)",
                 "The host stops offering STARTTLS: the downgrade attack", "strip")]
    BINDINGS = [Binding("d", "down", "Down"), Binding("u", "up", "Up"), Binding("c", "chaos", "Chaos"),
                Binding("C", "chaos_off", "Chaos off"), Binding("s", "strip", "Strip")]
    DEFAULT_CSS = """
    HostsPanel #hosts-table { height: 1fr; }
    """

    def __init__(self, ctx: PanelContext, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self._dirty = True

    def compose_panel(self) -> ComposeResult:
        yield Static("Select a host, then d (down), u (up), c (chaos), s (strip STARTTLS).", classes="hint",
                     markup=False)
        yield Static(smtp_rules(self.lab.world), id="hosts-rules", classes="hint", markup=False)
        yield RowList(COLUMNS, id="hosts-table",
                      shrink=(("mailboxes of", 0), ("chaos", 0), ("services", 24), ("services", 12)))

    def focus_main(self) -> None:
        self.query_one("#hosts-table", RowList).focus()

    def feed(self, batch: Batch) -> None:
        if batch.has(HostChanged, Queued, Removed):
            self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self.reload()

    def tick(self) -> None:
        self.reload()

    def show(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._dirty = False
        self.query_one("#hosts-table", RowList).replace({
            h["name"]: (h["name"], h["address"], h["state"], h["starttls"], " ".join(h["services"]) or "-",
                        ", ".join(h["domains"]) or "-", str(h["queued"]), h["chaos"] or "-")
            for h in self.lab.hosts_listing()})

    def _selected(self) -> str | None:
        row = self.query_one("#hosts-table", RowList).selected
        return row[0] if row is not None else None

    # --- actions -------------------------------------------------------------------
    @guarded
    def action_down(self) -> None:
        host = self._selected()
        if host is None:
            return
        fields = [Field("mode", "How is it down?\n" + "\n".join(f"  {k}: {v}" for k, v in OUTAGES.items()),
                        "refuse", FAULT_MODES)]
        self.app.push_screen(FormScreen(f"Take {host} down", fields, ok="Down"),
                             lambda values: self._down(host, values))

    @guarded
    async def _down(self, host: str, values: dict[str, str] | None) -> None:
        if values:
            state = await self.lab.host_down(host, values["mode"])
            self.app.notify(f"{host}: {state}")
            self.reload()

    @guarded
    async def action_up(self) -> None:
        host = self._selected()
        if host is not None:
            state = await self.lab.host_up(host)
            self.app.notify(f"{host}: {state}")
            self.reload()

    @guarded
    def action_strip(self) -> None:
        host = self._selected()
        if host is not None:
            stripped = next(h["starttls"] == "stripped" for h in self.lab.hosts_listing() if h["name"] == host)
            self.app.notify(f"{host}: {self.lab.host_strip(host, not stripped)}")
            self.reload()

    @guarded
    def action_chaos(self) -> None:
        host = self._selected()
        if host is None:
            return
        fields = [Field("stage", "Which command fails?", "RCPT", CHAOS_STAGES),
                  Field("probability", "Probability (0 to 1)", "0.5"),
                  Field("code", "Reply code (4xx: retry later, 5xx: bounce)", "451"),
                  Field("seed", "Random seed (the same seed replays the same failures)", "0")]
        self.app.push_screen(FormScreen(f"Chaos on {host}", fields, ok="Set"),
                             lambda values: self._chaos(host, values))

    @guarded
    def _chaos(self, host: str, values: dict[str, str] | None) -> None:
        if not values:
            return
        try:
            probability, code, seed = float(values["probability"]), int(values["code"]), int(values["seed"])
        except ValueError:
            self.app.notify("probability must be a number, code and seed whole numbers", severity="error")
            return
        described = self.lab.host_chaos(host, values["stage"], probability, code, seed)
        self.app.notify(f"{host}: chaos {described}")
        self.reload()

    @guarded
    def action_chaos_off(self) -> None:
        host = self._selected()
        if host is not None:
            self.lab.host_chaos(host, off=True)
            self.app.notify(f"{host}: chaos off")
            self.reload()
