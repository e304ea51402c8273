"""The DNS panel: the lab's zones and records, the live query log, and record editing.

Records come from the running `Authority` (`Lab.dns_records`).  `e` edits the
selected record (`Lab.dns_edit`), `a` adds one (`Lab.dns_add`, a form: zone,
name, type, data, TTL), `d` deletes the selected one after a yes/no
(`Lab.dns_delete`), `F` makes its zone fail.  A change is made to the zone in
place, bumps its SOA serial and clears the answer cache: the MTAs ask the lab
DNS on every relay (nothing is cached), so the very next message is routed by
the new data.  What the zone rules refuse (the SOA, the last apex NS, a CNAME
beside other data, ...) comes back as a notification.

Rows are sorted by zone, the home zone first (the world's first domain in
`lab.toml`: the one the course starts from, syr.edu in the default world),
then by name (the apex first), type (SOA and NS first) and data, numbers
compared as numbers.  `/` opens a filter: only the records whose name, type
or data contain its text (case ignored) stay listed, and every action works
on the record under the cursor among them; Escape clears it.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Log

from ...base.errors import UserError
from ...base.events import DnsQuery, Notice
from ...dns.authority import FAULT_MODES, Record
from ..fmt import stamp
from ..forms import ConfirmScreen, Field, FormScreen
from ..panel import Batch, Hint, Panel, PanelContext, append_lines, guarded
from ..rowlist import RowList


COLUMNS = ("zone", "name", "ttl", "type", "data")
LOG_LINES = 2_000


class DnsPanel(Panel):
    TITLE = "DNS"
    HELP = """\
The lab DNS (127.0.0.1 port {ports.dns}) is authoritative for every zone of the world.
The table lists each record; below, every query as it arrives, with who asked
(the MTAs ask from their own address, so you see `mail.northpole.org` look up
`syr.edu MX` before it relays), the question, and the answer code.

- `e` edits the selected record; the next look-up sees it. Take
  `mx1.luxsci.net` down (Hosts panel) and mail for luxsci.net waits at the
  backup `mx2` (preference 20); make `mx3` preference 15 and the next message
  waits at mx3 instead. Give syr.edu's backup `smtp2` preference 5 and mail
  sent to syr.edu goes there first — and bounces, "loops back to myself": the
  backup is now the best MX but not the mailbox host. Names without a final
  dot are relative to the zone, as in a BIND zone file.
- `a` adds a record: zone, name (`@` is the zone itself, `mx9` means
  `mx9.syr.edu`), type, data and TTL (empty: the TTL of the records of that
  name and type, else the zone's default). Give `luxsci.net` a new MX
  `15 mx3` while `mx1` is down and the next message waits at mx3. (On this
  panel `a` adds; the clock's jump ahead is on the Queue panel and `Ctrl+P`.)
- `d` deletes the selected record, after a yes/no: delete `www.syr.edu A`
  and `dig` gets NXDOMAIN. The zone rules of real DNS apply: the SOA is the
  lab's own, the last NS of a zone stays, and a CNAME never shares its name
  with other data (RFC 1034 §3.6.2).
- `F` makes the selected record's zone fail: SERVFAIL, NXDOMAIN or no answer at
  all (timeout); *off* heals it. Mail to that domain is deferred, or bounced on
  NXDOMAIN.
- `/` filters the records as you type: those whose name, type or data
  contain the text (case ignored), e.g. `mx`, `luxsci` or `127.0.0.66`;
  Enter goes back to the list, and `e`, `d`, `F` act on the record under
  the cursor among those shown. Escape clears the filter.
- Order: zone by zone, the home zone first (the world's first domain,
  `syr.edu` here: where the course's mail arrives), then by name, type and
  data, with numbers compared as numbers (MX 5 before 20 before 100).
- Ask yourself: `dig @127.0.0.1 -p {ports.dns} syr.edu MX`.
"""
    COMMANDS = [("DNS: edit the selected record", "Change data or TTL; routing follows", "edit"),
                ("DNS: add a record", "A new MX, A, CNAME, TXT... in a zone; routing follows", "add"),
                ("DNS: delete the selected record", "Remove it from its zone; routing follows", "delete"),
                ("DNS: fault for the selected zone", "SERVFAIL, NXDOMAIN, timeout or off", "fault"),
                ("DNS: filter the records", "Only records whose name, type or data contain a text", "filter")]
    BINDINGS = [Binding("e", "edit", "Edit record"), Binding("a", "add", "Add record"),
                Binding("d", "delete", "Delete record"), Binding("F", "fault", "Zone fault"),
                Binding("slash", "filter", "Filter")]
    DEFAULT_CSS = """
    DnsPanel #dns-filter { display: none; height: 3; }
    DnsPanel #dns-filter.-shown { display: block; }
    DnsPanel #dns-records { height: 55%; }
    DnsPanel #dns-log { height: 1fr; border-top: solid $accent; }
    """

    def __init__(self, ctx: PanelContext, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self._pending: deque[DnsQuery | Notice] = deque(maxlen=LOG_LINES)   # lines made when drawn
        self._dirty = True
        self.filter = ""                       # the filter's text, lower case; "" shows every record

    def compose_panel(self) -> ComposeResult:
        yield Hint(id="dns-hint")
        yield Input(placeholder="filter: records whose name, type or data contain this (Escape clears)",
                    id="dns-filter")
        yield RowList(COLUMNS, id="dns-records", shrink=(("data", 48), ("ttl", 0), ("zone", 0), ("data", 24)))
        yield Log(id="dns-log", max_lines=LOG_LINES)

    def focus_main(self) -> None:
        self.query_one("#dns-records", RowList).focus()

    def feed(self, batch: Batch) -> None:
        for e in batch.of(DnsQuery, Notice):
            if isinstance(e, DnsQuery):
                self._pending.append(e)
            elif e.program == "dns":
                self._pending.append(e)
                self._dirty = True

    def _line(self, e: DnsQuery | Notice) -> str:
        if isinstance(e, Notice):
            return f"{stamp(e.time)} {e.text}"
        ip = e.client.rpartition(":")[0]
        host = self.lab.world.host_at(ip)
        who = host.name if host else ip
        plural = "" if e.answers == 1 else "s"
        return (f"{stamp(e.time)} {who:<22} {e.transport} {e.name} {e.rdtype} -> {e.rcode}, "
                f"{e.answers} answer{plural}")

    def flush(self) -> None:
        if self._dirty:
            self.reload()
        if self._pending:
            append_lines(self.query_one("#dns-log", Log), list(self._pending),
                         "{n} more queries in this burst (the maillog has them all)", self._line)
            self._pending.clear()

    def reload(self) -> None:
        self._dirty = False
        faults = self.lab.dns_faults()
        records = self.lab.dns_records()
        home = next(iter(self.lab.world.domains), "")
        shown = sorted((r for r in records if _matches(r, self.filter)), key=lambda r: _record_order(r, home))
        self.query_one("#dns-records", RowList).replace({   # a record is one rdata of one rrset: a key
            f"{r.zone}\t{r.name}\t{r.rdtype}\t{r.data}":
                (f"{r.zone} ({faults[r.zone]})" if r.zone in faults else r.zone, r.name, str(r.ttl), r.rdtype, r.data)
            for r in shown})
        if self.filter:
            counts = f"{len(shown)} of {len(records)} records match '{self.filter}' · Escape clears"
        else:
            counts = f"{len(records)} records in {len({r.zone for r in records})} zones · / filter"
        self.query_one("#dns-hint", Hint).show(
            f"{counts} · e edit · a add · d delete · F zone fault · "
            f"dig @127.0.0.1 -p {self.lab.ports.dns} syr.edu MX")

    def _selected(self) -> tuple[str, str, str, str, str] | None:
        row = self.query_one("#dns-records", RowList).selected
        if row is None:
            return None
        zone, name, ttl, rdtype, data = row
        return zone.split(" (")[0], name, ttl, rdtype, data

    # --- the filter ----------------------------------------------------------------
    @guarded
    def action_filter(self) -> None:
        box = self.query_one("#dns-filter", Input)
        box.add_class("-shown")
        box.focus()

    @guarded
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "dns-filter":
            event.stop()
            self.filter = event.value.strip().lower()
            self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "dns-filter":
            event.stop()
            self.focus_main()

    @guarded
    def on_key(self, event: events.Key) -> None:
        box = self.query_one("#dns-filter", Input)
        if event.key == "escape" and (box.has_focus or self.filter):
            event.stop()
            self._clear_filter(box)

    def _clear_filter(self, box: Input) -> None:
        """Every record again, the cursor staying on the one it was on."""
        box.remove_class("-shown")
        if box.value:
            with box.prevent(Input.Changed):
                box.value = ""
        self.filter = ""
        self.reload()
        self.focus_main()

    # --- actions -------------------------------------------------------------------
    @guarded
    def action_edit(self) -> None:
        row = self._selected()
        if row is None:
            return
        zone, name, ttl, rdtype, data = row
        fields = [Field("data", f"{name} IN {rdtype} — new data (names without a final dot are "
                                f"relative to {zone})", data),
                  Field("ttl", "TTL (seconds)", ttl)]
        self.app.push_screen(FormScreen(f"Edit a record of {zone}", fields, ok="Save"),
                             lambda values: self._edit(row, values))

    @guarded
    def _edit(self, row: tuple[str, str, str, str, str], values: dict[str, str] | None) -> None:
        if not values:
            return
        zone, name, _ttl, rdtype, data = row
        record = self.lab.dns_edit(zone, name, rdtype, data, values["data"], _ttl_of(values["ttl"]))
        self.app.notify(f"{record.text}: the next look-up (and so routing) sees it", title="record changed")
        self.reload()
        table = self.query_one("#dns-records", RowList)      # the cursor stays on the edited record
        key = f"{record.zone}\t{record.name}\t{record.rdtype}\t{record.data}"
        if key in table:
            table.move_cursor(table.get_row_index(key))

    @guarded
    def action_add(self) -> None:
        zones = sorted({r.zone for r in self.lab.dns_records()})
        if not zones:
            return
        row = self._selected()
        zone, name, rdtype = (row[0], row[1], row[3]) if row else (zones[0], zones[0], "MX")
        relative = "@" if name == zone else name.removesuffix(f".{zone}")
        fields = [Field("zone", "Zone", zone, tuple(zones)),
                  Field("name", "Name (@ is the zone; no final dot: relative to it)", relative),
                  Field("type", "Type (A, AAAA, MX, CNAME, TXT, NS, PTR, SRV, ...)",
                        "A" if rdtype == "SOA" else rdtype),
                  Field("data", "Data, as in a zone file (MX: 15 mx3)"),
                  Field("ttl", "TTL in seconds (empty: that of its RRset, else the zone's)")]
        self.app.push_screen(FormScreen("Add a record (names without a final dot: relative to the zone)",
                                        fields, ok="Add"), self._add)

    @guarded
    def _add(self, values: dict[str, str] | None) -> None:
        if not values:
            return
        record = self.lab.dns_add(values["zone"], values["name"], values["type"], values["data"],
                                  _ttl_of(values["ttl"], blank=True))
        self.app.notify(f"{record.text}: the next look-up (and so routing) sees it", title="record added")
        self.reload()

    @guarded
    def action_delete(self) -> None:
        row = self._selected()
        if row is None:
            return
        zone, name, ttl, rdtype, data = row
        self.app.push_screen(ConfirmScreen(f"Delete {name} {ttl} IN {rdtype} {data} from zone {zone}? "
                                           "The next look-up no longer sees it."),
                             lambda yes: self._delete(row, yes))

    @guarded
    def _delete(self, row: tuple[str, str, str, str, str], yes: bool | None) -> None:
        if not yes:
            return
        zone, name, _ttl, rdtype, data = row
        record = self.lab.dns_delete(zone, name, rdtype, data)
        self.app.notify(f"{record.text}: the next look-up (and so routing) no longer sees it",
                        title="record deleted")
        self.reload()

    @guarded
    def action_fault(self) -> None:
        row = self._selected()
        if row is None:
            return
        zone = row[0]
        fields = [Field("mode", f"How should {zone} fail?", "servfail", (*FAULT_MODES, "off"))]
        self.app.push_screen(FormScreen(f"DNS fault for {zone}", fields, ok="Apply"),
                             lambda values: self._fault(zone, values))

    @guarded
    def _fault(self, zone: str, values: dict[str, str] | None) -> None:
        if values:
            self.lab.dns_fault(zone, values["mode"])
            self.app.notify(f"zone {zone}: {values['mode']}")
            self.reload()


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that compares runs of digits as numbers: "MX 5" < "MX 20" < "MX 100"."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower())
                 for part in re.split(r"(\d+)", text) if part)


_APEX_FIRST = ("SOA", "NS")     # a zone file's order: its SOA, its name servers, then the rest


def _record_order(r: Record, home: str) -> tuple[object, ...]:
    """Zone (`home` first), the apex name first, then names; SOA and NS first, then types; data."""
    rank = _APEX_FIRST.index(r.rdtype) if r.rdtype in _APEX_FIRST else len(_APEX_FIRST)
    return (r.zone != home, _natural(r.zone), r.name != r.zone, _natural(r.name), rank, r.rdtype,
            _natural(r.data))


def _matches(r: Record, text: str) -> bool:
    """Whether the record's name, type or data contain `text` (lower case; "" matches all)."""
    return not text or any(text in field.lower() for field in (r.name, r.rdtype, r.data))


def _ttl_of(text: str, blank: bool = False) -> int | None:
    """The TTL typed in a form: whole seconds (or nothing, where `blank` allows it)."""
    if blank and not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError("the TTL must be a whole number of seconds") from None
