"""The event bus keeps memory bounded; the core never imports Textual."""

from __future__ import annotations

import subprocess
import sys

from maillab.base.events import EventBus, Notice, SessionLine


def test_subscription_keeps_the_newest_and_counts_the_dropped():
    bus = EventBus()
    sub = bus.subscribe(maxlen=100)
    for i in range(10_000):
        bus.publish(Notice(float(i), "h", "p", f"n{i}"))
    events = sub.drain()
    assert len(events) == 100 and events[-1].text == "n9999" and events[0].text == "n9900"
    assert sub.dropped == 9_900


def test_filtered_subscription_and_close():
    bus = EventBus()
    only_h2 = bus.subscribe(accept=lambda e: e.host == "h2")
    bus.publish(Notice(0, "h1", "p", "a"))
    bus.publish(Notice(0, "h2", "p", "b"))
    assert [e.text for e in only_h2.drain()] == ["b"]
    only_h2.close()
    bus.publish(Notice(0, "h2", "p", "c"))
    assert only_h2.drain() == []


def test_a_subscription_by_kind_sees_only_those_events_even_when_others_come_and_go():
    bus = EventBus()
    everything = bus.subscribe()
    lines = bus.subscribe(kinds=(SessionLine,))
    bus.publish(Notice(0, "h", "p", "a"))
    bus.publish(SessionLine(0, "s1", "h", "client", "EHLO x"))
    later = bus.subscribe(kinds=(Notice,))            # the routes are worked out again
    bus.publish(Notice(0, "h", "p", "b"))
    assert [type(e).__name__ for e in everything.drain()] == ["Notice", "SessionLine", "Notice"]
    assert [e.text for e in lines.drain()] == ["EHLO x"]
    assert [e.text for e in later.drain()] == ["b"]
    lines.close()
    bus.publish(SessionLine(0, "s1", "h", "client", "QUIT"))
    assert lines.drain() == [] and len(everything.drain()) == 1


def test_the_engine_imports_without_textual():
    code = ("import sys, maillab.lab.supervisor, maillab.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
