#!/usr/bin/env python3
"""Idle TUI benchmark: how many bytes a `maillab tui` with nothing to show writes to its terminal.

An idle screen should cost (almost) nothing: the header's lab clock changes
once a second, and nothing else.  Issue 13 measured an idle Dialogues panel
repainting ~15 times a second (~55 KB/s).  This runs the real thing on a
pseudo-terminal of 120x40 (as in tmux; bench/tui.py's Terminal), lets the lab
start, shows each panel in turn, waits --settle seconds, then counts every
byte the TUI writes for --seconds and prints bytes/s per panel.

    python3 bench/tui_idle.py                  # every panel, 10 s each
    python3 bench/tui_idle.py --panels 1 --seconds 10
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("maillab_bench_tui", os.path.join(_HERE, "tui.py"))
assert _spec is not None and _spec.loader is not None
tui = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tui)        # Terminal, wait_port, the panels' marks, the ingest helpers

PANEL_NAMES = {"1": "Dialogues", "2": "Queue", "3": "Hosts", "4": "DNS", "5": "Journey",
               "6": "Mailboxes", "7": "Log", "8": "Monitor"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--panels", default="".join(PANEL_NAMES), help="panel keys to measure (12345678)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds counted per panel (10)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after a switch before counting (2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    work = tui.ingest.work_folder("maillab-bench-tui-idle-")
    term = None
    try:
        offset = tui.ingest.free_offset(set())
        term = tui.Terminal(work / "state", offset)
        if term.wait_for(tui.FIRST_FRAME, 30) is None or tui.wait_port(2525 + offset, 30) is None:
            raise SystemExit(f"maillab tui did not start; see {work}")
        print(f"idle maillab tui on a {tui.COLUMNS}x{tui.ROWS} pty, {args.seconds:g} s per panel:")
        shown = "1"                               # the panel on screen at start
        for key in args.panels:
            if key != shown:
                term.mark()
                term.press(key)
                if term.wait_for(tui.PANEL_MARKS[key], 10) is None:
                    raise SystemExit(f"panel {key} did not come on screen")
                shown = key
            time.sleep(args.settle)               # the switch's own redraw is not idle output
            before, t0 = term.received, time.monotonic()
            time.sleep(args.seconds)
            rate = (term.received - before) / (time.monotonic() - t0)
            print(f"  {key} {PANEL_NAMES[key]:<10} {rate:8.0f} bytes/s", flush=True)
        return 0
    finally:
        if term is not None:
            term.quit()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
