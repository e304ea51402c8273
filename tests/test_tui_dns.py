"""Editing the lab DNS at run time (Authority.replace_record) and the DNS panel that drives it:
edit, add and delete a record, then see it over the wire and in routing."""

from __future__ import annotations

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from textual.widgets import Button, Input, Log, Select

from maillab.dns.authority import Authority
from maillab.lab.supervisor import DNS_ADDRESS
from maillab.lab.world import load_world
from maillab.tui.forms import ConfirmScreen, FormScreen
from maillab.tui.rowlist import RowList

from test_tui_support import in_thread, log_text, running_app, screen_text, submit, table_rows, until


def mx_of(authority: Authority, name: str) -> list[str]:
    reply, _ = authority.respond(dns.message.make_query(name, "MX").to_wire(), 1232)
    answer = dns.message.from_wire(reply).answer
    return sorted(r.to_text() for rrset in answer for r in rrset)


def serial(authority: Authority, zone: str) -> int:
    return next(int(r.data.split()[2]) for r in authority.records() if r.zone == zone and r.rdtype == "SOA")


def test_replace_record_changes_answers_at_once_and_bumps_the_serial():
    authority = Authority(load_world().zones)
    assert mx_of(authority, "syr.edu") == ["10 smtp1.syr.edu.", "20 smtp2.syr.edu."]   # cached now
    before = serial(authority, "syr.edu")
    record = authority.replace_record("syr.edu", "syr.edu", "MX", "20 smtp2.syr.edu.", "5 smtp2", ttl=60)
    assert (record.name, record.rdtype, record.data, record.ttl) == ("syr.edu", "MX", "5 smtp2.syr.edu.", 60)
    assert mx_of(authority, "syr.edu") == ["10 smtp1.syr.edu.", "5 smtp2.syr.edu."]
    assert serial(authority, "syr.edu") == before + 1


def test_replace_record_refuses_what_it_can_not_do():
    authority = Authority(load_world().zones)
    with pytest.raises(KeyError, match="no zone"):
        authority.replace_record("example.com", "example.com", "MX", "10 a.", "20 a.")
    with pytest.raises(KeyError, match="no record"):
        authority.replace_record("syr.edu", "syr.edu", "MX", "30 smtp3.syr.edu.", "5 smtp2.syr.edu.")
    with pytest.raises(ValueError, match="not valid MX data"):
        authority.replace_record("syr.edu", "syr.edu", "MX", "20 smtp2.syr.edu.", "twenty smtp2")
    with pytest.raises(ValueError, match="SOA"):
        authority.replace_record("syr.edu", "syr.edu", "SOA", "x", "y")
    with pytest.raises(ValueError, match="unknown record type"):
        authority.replace_record("syr.edu", "syr.edu", "BOGUS", "x", "y")
    assert mx_of(authority, "syr.edu") == ["10 smtp1.syr.edu.", "20 smtp2.syr.edu."]


def test_records_list_every_zone_with_soa_first():
    records = Authority(load_world().zones).records()
    zones = [r.zone for r in records]
    assert zones == sorted(zones) and "in-addr.arpa" in zones
    syr = [r for r in records if r.zone == "syr.edu"]
    assert syr[0].rdtype == "SOA" and ("smtp1.syr.edu", "A", "127.0.0.1") in {(r.name, r.rdtype, r.data) for r in syr}


async def test_edit_an_mx_preference_in_the_panel_and_routing_follows(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("4")
        table = app.query_one("#dns-records", RowList)
        await until(pilot, lambda: table.row_count > 50)
        row = next(i for i, r in enumerate(table_rows(table)) if r[3] == "MX" and r[4] == "20 smtp2.syr.edu.")
        table.move_cursor(row=row)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        app.screen.query_one("#field-data", Input).value = "5 smtp2.syr.edu."
        app.screen.query_one("#field-data", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: ["syr.edu", "syr.edu", "300", "MX", "5 smtp2.syr.edu."] in table_rows(table))
        assert any(r.data == "5 smtp2.syr.edu." for r in app.lab.dns_records())
        # Santa's server now looks up syr.edu MX and goes to smtp2 first
        await in_thread(submit, "127.0.0.3", app.lab.ports.submission)
        await until(pilot, lambda: any("via smtp2.syr.edu[127.0.0.2]" in text for r in app.journeys.records.values()
                                       for _t, text in r.events))
        dns_log = app.query_one("#dns-log", Log)
        await until(pilot, lambda: "syr.edu MX -> NOERROR" in log_text(dns_log))
        log = log_text(dns_log)
        assert "zone syr.edu changed: syr.edu 300 IN MX 5 smtp2.syr.edu. (was 20 smtp2.syr.edu.)" in log
        assert "mail.northpole.org" in log and "syr.edu MX -> NOERROR, 2 answers" in log


async def test_a_zone_fault_from_the_panel(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        await pilot.press("4")
        table = app.query_one("#dns-records", RowList)
        await until(pilot, lambda: table.row_count > 50)
        table.move_cursor(row=next(i for i, r in enumerate(table_rows(table)) if r[0] == "gmail.com"))
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        app.screen.query_one("#ok", Button).press()
        await until(pilot, lambda: app.lab.dns_faults() == {"gmail.com": "servfail"})
        await until(pilot, lambda: any(r[0] == "gmail.com (servfail)" for r in table_rows(table)))
        assert app.lab.dns_faults() == {"gmail.com": "servfail"}


def waiting_at(lab) -> set[str]:
    """The hosts where mail for bob@luxsci.net waits, deferred."""
    return {e["host"] for e in lab.queue_listing() if e["recipients"][0]["address"] == "bob@luxsci.net"
            and e["queue"] == "deferred"}


async def test_the_tour_s_backup_mx_story(tmp_path):
    """README and help: with mx1 down mail waits at mx2; mx3 at 15 takes the next one."""
    async with running_app(tmp_path) as (app, pilot):
        lab = app.lab
        await lab.host_down("mx1.luxsci.net")

        await in_thread(submit, "127.0.0.3", lab.ports.submission, rcpt="bob@luxsci.net")
        assert await until(pilot, lambda: "mx2.luxsci.net" in waiting_at(lab))
        lab.dns_edit("luxsci.net", "luxsci.net", "MX", "30 mx3.luxsci.net.", "15 mx3.luxsci.net.")
        await in_thread(submit, "127.0.0.3", lab.ports.submission, rcpt="bob@luxsci.net")
        assert await until(pilot, lambda: waiting_at(lab) == {"mx2.luxsci.net", "mx3.luxsci.net"})


async def over_the_wire(app, name: str, rdtype: str) -> dns.message.Message:
    """Ask the running lab's DNS server over UDP, as dig would."""
    query = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(query, DNS_ADDRESS, timeout=5, port=app.lab.ports.dns)


def answers(reply: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in reply.answer for r in rrset)


async def dns_panel(app, pilot) -> RowList:
    await pilot.press("4")
    table = app.query_one("#dns-records", RowList)
    await until(pilot, lambda: table.row_count > 50)
    return table


def select_row(table: RowList, zone: str, name: str, rdtype: str, data: str) -> None:
    table.move_cursor(row=table_rows(table).index([zone, name, "300", rdtype, data]))


async def add_in_form(app, pilot, data: str, ttl: str = "", **fields: str) -> None:
    """Fill the add form's data (and TTL, and any other field given) and press Add."""
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, FormScreen))
    for field, value in {"data": data, "ttl": ttl, **fields}.items():
        app.screen.query_one(f"#field-{field}").value = value
    app.screen.query_one("#ok", Button).press()
    await until(pilot, lambda: not isinstance(app.screen, FormScreen))


async def test_add_an_mx_in_the_panel_and_dig_sees_it(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        table = await dns_panel(app, pilot)
        assert answers(await over_the_wire(app, "syr.edu", "MX")) == ["10 smtp1.syr.edu.", "20 smtp2.syr.edu."]
        select_row(table, "syr.edu", "syr.edu", "MX", "20 smtp2.syr.edu.")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        form = app.screen                       # the selected record's zone, name and type to start from
        assert (form.query_one("#field-zone", Select).value, form.query_one("#field-name", Input).value,
                form.query_one("#field-type", Input).value) == ("syr.edu", "@", "MX")
        form.query_one("#field-data", Input).value = "30 www"              # relative, as in a zone file
        form.query_one("#field-data", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: ["syr.edu", "syr.edu", "300", "MX", "30 www.syr.edu."] in table_rows(table))
        reply = await over_the_wire(app, "syr.edu", "MX")
        assert reply.rcode() == dns.rcode.NOERROR
        assert answers(reply) == ["10 smtp1.syr.edu.", "20 smtp2.syr.edu.", "30 www.syr.edu."]
        assert "www.syr.edu. 300 IN A 127.0.0.1" in [rrset.to_text() for rrset in reply.additional]
        dns_log = app.query_one("#dns-log", Log)
        await until(pilot, lambda: "zone syr.edu changed: added syr.edu 300 IN MX 30 www.syr.edu." in log_text(dns_log))
        # a second time is refused, as nsupdate would not add a duplicate either
        await add_in_form(app, pilot, "30 www.syr.edu.")
        assert await until(pilot, lambda: "already there" in screen_text(app))
        assert sum(r.data == "30 www.syr.edu." for r in app.lab.dns_records()) == 1


async def test_delete_a_record_in_the_panel_and_dig_gets_nxdomain_and_nodata(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        table = await dns_panel(app, pilot)
        assert answers(await over_the_wire(app, "www.syr.edu", "A")) == ["127.0.0.1"]     # cached now
        select_row(table, "syr.edu", "www.syr.edu", "A", "127.0.0.1")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")                                              # changed my mind
        assert answers(await over_the_wire(app, "www.syr.edu", "A")) == ["127.0.0.1"]
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not any(r[1] == "www.syr.edu" for r in table_rows(table)))
        reply = await over_the_wire(app, "www.syr.edu", "A")
        assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.answer and reply.authority

        select_row(table, "syr.edu", "syr.edu", "TXT", '"v=spf1 ip4:127.0.0.1 ip4:127.0.0.2 -all"')
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not any(r[1] == "syr.edu" and r[3] == "TXT" for r in table_rows(table)))
        reply = await over_the_wire(app, "syr.edu", "TXT")
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer           # NODATA: syr.edu has MX
        assert [rrset.rdtype for rrset in reply.authority] == [dns.rdatatype.SOA]

        dns_log = log_text(app.query_one("#dns-log", Log))
        assert "zone syr.edu changed: deleted www.syr.edu 300 IN A 127.0.0.1" in dns_log
        # the zone's only NS stays: refused, with the reason, and nothing changes
        select_row(table, "syr.edu", "syr.edu", "NS", "ns.syr.edu.")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        assert await until(pilot, lambda: "add another NS first" in screen_text(app))
        assert answers(await over_the_wire(app, "syr.edu", "NS")) == ["ns.syr.edu."]


async def test_add_a_better_mx_in_the_panel_and_routing_follows(tmp_path):
    """With mx1.luxsci.net down mail for bob waits at the backup mx2 (20); add `15 mx3`
    in the panel and the next message, sent with smtplib, waits at mx3 instead."""
    async with running_app(tmp_path) as (app, pilot):
        lab = app.lab
        await lab.host_down("mx1.luxsci.net")

        await in_thread(submit, "127.0.0.3", lab.ports.submission, rcpt="bob@luxsci.net")
        assert await until(pilot, lambda: waiting_at(lab) == {"mx2.luxsci.net"})
        table = await dns_panel(app, pilot)
        select_row(table, "luxsci.net", "luxsci.net", "MX", "30 mx3.luxsci.net.")
        await add_in_form(app, pilot, "15 mx3")
        await until(pilot, lambda: ["luxsci.net", "luxsci.net", "300", "MX", "15 mx3.luxsci.net."]
                    in table_rows(table))
        await in_thread(submit, "127.0.0.3", lab.ports.submission, rcpt="bob@luxsci.net")
        assert await until(pilot, lambda: waiting_at(lab) == {"mx2.luxsci.net", "mx3.luxsci.net"})
        assert await until(pilot, lambda: any("via mx3.luxsci.net[127.0.0.7]" in text
                                              for r in app.journeys.records.values() for _t, text in r.events))


async def test_records_sort_numbers_as_numbers_and_the_cursor_stays_on_an_edited_record(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        lab = app.lab
        lab.dns_add("syr.edu", "syr.edu", "MX", "5 mx5.syr.edu.")
        lab.dns_add("syr.edu", "syr.edu", "MX", "100 mx100.syr.edu.")
        await pilot.press("4")
        panel = app.query_one("#dns-panel")
        panel.reload()
        table = app.query_one("#dns-records", RowList)
        mx = [row[4] for row in table_rows(table) if row[0].startswith("syr.edu") and row[3] == "MX"]
        prefs = [int(d.split()[0]) for d in mx]
        assert prefs == sorted(prefs) and 5 in prefs and 100 in prefs, mx
        key = next(k for k in table.keys() if k.endswith("\t100 mx100.syr.edu."))
        table.move_cursor(table.get_row_index(key))
        panel._edit(panel._selected(), {"data": "1 mx100.syr.edu.", "ttl": "300"})
        await pilot.pause()
        assert table.selected[4] == "1 mx100.syr.edu.", (table.selected, [n.message for n in app._notifications])


async def test_the_home_zone_comes_first_then_the_others_in_order(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        table = await dns_panel(app, pilot)
        zones = [r[0] for r in table_rows(table)]
        home = next(iter(app.lab.world.domains))
        assert home == "syr.edu" and zones[0] == home
        order = list(dict.fromkeys(zones))                 # each zone's rows together, home first
        assert order == [home, *sorted(z for z in order if z != home)]
        assert len(order) == len(set(zones)) and table_rows(table)[0][3] == "SOA"
        panel = app.query_one("#dns-panel")
        assert "the home zone first" in panel.help_text() and "`/` filters" in panel.help_text()
        assert ("DNS: filter the records", "Only records whose name, type or data contain a text",
                "filter") in panel.COMMANDS


def matching(row: list[str], text: str) -> bool:
    return any(text in cell.lower() for cell in (row[1], row[3], row[4]))


async def test_filter_as_you_type_edit_the_record_under_the_cursor_escape_restores_all(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        table = await dns_panel(app, pilot)
        everything = table_rows(table)
        box = app.query_one("#dns-filter", Input)
        assert not box.display
        await pilot.press("slash")
        await until(pilot, lambda: box.has_focus and box.display)
        await pilot.press("l", "U", "x")                      # case ignored
        await until(pilot, lambda: 0 < table.row_count < len(everything))
        rows = table_rows(table)
        assert all(matching(r, "lux") for r in rows), rows
        assert rows == [r for r in everything if matching(r, "lux")]    # none missed, order kept
        assert table.selected is not None and matching(list(table.selected), "lux")
        hint = f"{len(rows)} of {len(everything)} records match 'lux'"
        assert await until(pilot, lambda: hint in screen_text(app))
        # the type and the data match too
        await pilot.press("backspace", "backspace", "backspace", "m", "x")
        await until(pilot, lambda: table_rows(table) == [r for r in everything if matching(r, "mx")])
        assert any(r[3] == "MX" and "mx" not in r[1] for r in table_rows(table))     # by type only
        assert any(r[3] == "A" and r[1].startswith("mx") for r in table_rows(table))  # by name
        await pilot.press("enter")                                    # back to the list, still filtered
        await until(pilot, lambda: table.has_focus)
        assert table_rows(table) == [r for r in everything if matching(r, "mx")]
        target = ["luxsci.net", "luxsci.net", "300", "MX", "30 mx3.luxsci.net."]
        table.move_cursor(table_rows(table).index(target))
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        assert app.screen.query_one("#field-data", Input).value == "30 mx3.luxsci.net."
        app.screen.query_one("#field-data", Input).value = "15 mx3.luxsci.net."
        app.screen.query_one("#ok", Button).press()
        edited = ["luxsci.net", "luxsci.net", "300", "MX", "15 mx3.luxsci.net."]
        await until(pilot, lambda: edited in table_rows(table))
        luxsci_mx = sorted(r.data for r in app.lab.dns_records() if r.zone == "luxsci.net" and r.rdtype == "MX")
        assert luxsci_mx == ["10 mx1.luxsci.net.", "15 mx3.luxsci.net.", "20 mx2.luxsci.net."]
        assert list(table.selected) == edited and matching(edited, "mx")
        # Escape: every record again, the cursor still on the edited one
        await pilot.press("escape")
        await until(pilot, lambda: table.row_count == len(everything))
        not_soa = lambda rows: sorted(r for r in rows if r[3] != "SOA")      # the edit bumped a serial
        assert not_soa(table_rows(table)) == not_soa([edited if r == target else r for r in everything])
        assert [r[4] for r in table_rows(table) if r[0] == "luxsci.net" and r[3] == "MX"] == \
            ["10 mx1.luxsci.net.", "15 mx3.luxsci.net.", "20 mx2.luxsci.net."]
        assert list(table.selected) == edited and not box.display and box.value == ""
        assert await until(pilot, lambda: f"{len(everything)} records in" in screen_text(app))
        assert "match" not in screen_text(app)


async def test_escape_in_the_filter_box_clears_it_and_a_filter_matching_nothing_says_so(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        table = await dns_panel(app, pilot)
        total = table.row_count
        await pilot.press("slash", "z", "z", "z")
        await until(pilot, lambda: table.row_count == 0)
        assert await until(pilot, lambda: f"0 of {total} records match 'zzz'" in screen_text(app))
        await pilot.press("e")                                      # typed into the filter, not an edit
        assert not isinstance(app.screen, FormScreen) and app.query_one("#dns-filter", Input).value == "zzze"
        await pilot.press("escape")
        await until(pilot, lambda: table.row_count == total and table.has_focus)
        assert app.query_one("#dns-panel").filter == ""
