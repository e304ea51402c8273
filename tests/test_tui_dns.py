"""Editing the lab DNS at run time (Authority.replace_record) and the DNS panel that drives it."""

from __future__ import annotations

import dns.message
import dns.rdatatype
import pytest
from textual.widgets import Button, DataTable, Input, Log

from maillab.dns.authority import Authority
from maillab.tui.forms import FormScreen
from maillab.world import load_world

from test_tui_support import in_thread, log_text, running_app, submit, table_rows, until


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
        table = app.query_one("#dns-records", DataTable)
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
        table = app.query_one("#dns-records", DataTable)
        await until(pilot, lambda: table.row_count > 50)
        table.move_cursor(row=next(i for i, r in enumerate(table_rows(table)) if r[0] == "gmail.com"))
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, FormScreen))
        app.screen.query_one("#ok", Button).press()
        await until(pilot, lambda: app.lab.dns_faults() == {"gmail.com": "servfail"})
        await until(pilot, lambda: any(r[0] == "gmail.com (servfail)" for r in table_rows(table)))
        assert app.lab.dns_faults() == {"gmail.com": "servfail"}


async def test_the_tour_s_backup_mx_story(tmp_path):
    """README and help: with mx1 down mail waits at mx2; mx3 at 15 takes the next one."""
    async with running_app(tmp_path) as (app, pilot):
        lab = app.lab
        await lab.host_down("mx1.luxsci.net")

        def waiting_at() -> set[str]:
            return {e["host"] for e in lab.queue_listing() if e["recipients"][0]["address"] == "bob@luxsci.net"
                    and e["queue"] == "deferred"}
        await in_thread(submit, "127.0.0.3", lab.ports.submission, rcpt="bob@luxsci.net")
        assert await until(pilot, lambda: "mx2.luxsci.net" in waiting_at())
        lab.dns_edit("luxsci.net", "luxsci.net", "MX", "30 mx3.luxsci.net.", "15 mx3.luxsci.net.")
        await in_thread(submit, "127.0.0.3", lab.ports.submission, rcpt="bob@luxsci.net")
        assert await until(pilot, lambda: waiting_at() == {"mx2.luxsci.net", "mx3.luxsci.net"})
