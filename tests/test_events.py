"""The event bus keeps memory bounded; the core never imports Textual."""

from __future__ import annotations

import subprocess
import sys

from maillab.events import EventBus, Notice


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


def test_the_engine_imports_without_textual():
    code = ("import sys, maillab.lab, maillab.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
