#!/usr/bin/env python3
"""Memory benchmark (issue 13): many concurrent sessions each sending a message near the
10 MB limit.  How much memory does the lab hold at the peak, and does it give it back?

Starts `maillab serve` in its own process (fresh state folder beside the default
state folder, a free port offset: bench/ingest.py's helpers), opens --sessions
SMTP sessions at once (asyncio raw streams in this process), each sending one
--size message to mafudge@syr.edu, waits until every accepted message is a file
in the Maildir, lets the lab settle, and prints: accepted, refused with 452,
other errors, delivered, and the lab process's VmHWM (peak RSS) and VmRSS after
the load, from /proc/PID/status.

    python3 bench/memory.py                       # 150 sessions x 9.5 MB
    python3 bench/memory.py --sessions 20 --size 5M
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import importlib.util  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402


def _ingest():
    """bench/ingest.py as a module: its lab starter, message maker and reply reader."""
    spec = importlib.util.spec_from_file_location("bench_ingest", os.path.join(_HERE, "ingest.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ingest = _ingest()
SETTLE = 5.0          # seconds after delivery before reading VmRSS "after"
SESSION_TIMEOUT = 600.0


async def _session(port: int, prefix: bytes, index: int, suffix: bytes) -> str:
    """One transaction (bench/ingest.py's); its outcome: "250", "452", or an error's text."""
    try:
        # the same big suffix object for every session: never copied per message
        await ingest._transaction(ingest.LAB_HOST, port, (prefix, b"%09d" % index, suffix))
        return "250"
    except ingest.SmtpError as e:
        return "452" if "got 452" in str(e) else str(e)


async def _load(port: int, sessions: int, size: int) -> Counter:
    prefix, suffix = ingest.message_parts(size)

    async def one(i: int) -> str:
        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                return await _session(port, prefix, i, suffix)
        except (OSError, ingest.SmtpError, TimeoutError, asyncio.IncompleteReadError) as e:
            return f"{type(e).__name__}: {e}"

    return Counter(await asyncio.gather(*(one(i) for i in range(sessions))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=150)
    ap.add_argument("--size", type=ingest.parse_size, default=ingest.parse_size("9.5M"))
    ap.add_argument("--keep", action="store_true", help="keep the state folder")
    args = ap.parse_args(argv)

    work = ingest.work_folder("maillab-memory-")
    lab = None
    try:
        lab, new, port = ingest.start_lab(work, "memory", set(), None)
        rss_idle = ingest.proc_status_kb(lab.pid, "VmRSS")
        t0 = time.monotonic()
        outcomes = asyncio.run(_load(port, args.sessions, args.size))
        t_load = time.monotonic() - t0
        accepted = outcomes.pop("250", 0)
        refused = outcomes.pop("452", 0)
        _, delivered = ingest.wait_maildir(new, accepted, timeout=600)
        t_delivered = time.monotonic() - t0
        time.sleep(SETTLE)
        hwm = ingest.proc_status_kb(lab.pid, "VmHWM")
        rss = ingest.proc_status_kb(lab.pid, "VmRSS")
        mb = 1024
        print(f"{args.sessions} sessions x {args.size} octets ({args.size / 2**20:.1f} MiB)")
        print(f"accepted (250) {accepted}   refused (452) {refused}   other {sum(outcomes.values())}"
              f"   delivered {delivered}")
        for text, n in outcomes.most_common(3):
            print(f"  {n} x {text[:150]}")
        print(f"load {t_load:.1f} s, delivered by {t_delivered:.1f} s")
        print(f"lab VmRSS idle {rss_idle / mb:.0f} MB   VmHWM (peak) {hwm / mb:.0f} MB   "
              f"VmRSS {SETTLE:.0f} s after delivery {rss / mb:.0f} MB")
        return 0 if delivered == accepted and not outcomes else 1
    finally:
        if lab is not None:
            lab.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
