#!/usr/bin/env python3
"""The built-in MUA on a 10,000-message INBOX, beside neomutt over IMAP against the same lab.

It generates mafudge@syr.edu's INBOX (bench/imap.py's messages: ~3 KB, a fifth
multipart), starts `maillab serve` on free ports, and times, in this order:

    maillab MUA, first screen   connect, STARTTLS (verified), LOGIN, SELECT, UID SEARCH,
                                UID FETCH of the newest page (what the Mail screen draws first)
    maillab MUA, whole list     ... and every other page (the list scrolled to its end)
    maillab MUA, open message   UID FETCH BODY.PEEK[] of the oldest message
    neomutt, first screen       `neomutt -f imap://...` in tmux (STARTTLS, the lab CA, no
                                header cache) until its index shows the messages
    memory                      the client process's peak RSS with the 10,000 summaries held

The MUA here is the Mail screen's own client (`maillab.mua.imap_client`) driven
without the TUI; the screen's drawing (RowList: one string per row) is not in
these figures.  Runs: --runs (default 3), the median reported.

    python3 bench/mua.py                  # 10,000 messages
    python3 bench/mua.py --messages 2000 --runs 1
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import importlib.util  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from maillab.mua.imap_client import ImapClient  # noqa: E402
from maillab.net.tls import client_context  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_imap", os.path.join(_HERE, "imap.py"))
bench_imap = importlib.util.module_from_spec(_spec)        # type: ignore[arg-type]
sys.modules["bench_imap"] = bench_imap                     # its dataclasses look their module up
_spec.loader.exec_module(bench_imap)                       # type: ignore[union-attr]

PAGE, FIRST_PAGE = 200, 60          # as maillab/tui/mail/screen.py pages the list


async def mua_run(port: int, ca: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    client = await ImapClient.connect("127.0.0.1", port, tls="starttls", context=client_context(ca),
                                      server_hostname="smtp1.syr.edu")
    await client.login("mafudge@syr.edu", "maillab")
    await client.select("INBOX")
    uids = await client.uids()
    first = await client.summaries(uids[-FIRST_PAGE:])
    t_first = time.perf_counter()
    rest = uids[:-FIRST_PAGE]
    held = list(first)
    for end in range(len(rest), 0, -PAGE):
        held += await client.summaries(rest[max(0, end - PAGE):end])
    t_all = time.perf_counter()
    body = await client.message(uids[0])
    t_open = time.perf_counter()
    await client.logout()
    assert len(held) == len(uids) and body
    return {"first screen": (t_first - t0) * 1000, "whole list": (t_all - t0) * 1000,
            "open message": (t_open - t_all) * 1000}


def neomutt_first_screen(port: int, ca: Path, work: Path, count: int) -> float | None:
    neomutt, tmux = shutil.which("neomutt"), shutil.which("tmux")
    if not neomutt or not tmux:
        return None
    rc = work / "neomuttrc"
    rc.write_text(f"set ssl_ca_certificates_file={ca}\nset ssl_starttls=yes\nset ssl_force_tls=yes\n"
                  "set imap_user=mafudge@syr.edu\nset imap_pass=maillab\nunset header_cache\n"
                  f"set folder=imap://127.0.0.1:{port}/\nset spoolfile=+INBOX\nset record=\nset postponed=\n"
                  "set sort=date\nset mail_check=0\nset imap_keepalive=0\nset timeout=0\n")
    server = f"maillab-bench-{os.getpid()}"
    try:
        t0 = time.perf_counter()
        subprocess.run([tmux, "-L", server, "new-session", "-d", "-x", "120", "-y", "40",
                        f"{neomutt} -n -F {rc} -f imap://127.0.0.1:{port}/INBOX"], check=True)
        while time.perf_counter() - t0 < 120:
            screen = subprocess.run([tmux, "-L", server, "capture-pane", "-p"], capture_output=True,
                                    text=True).stdout
            if f"Msgs:{count}" in screen.replace(" ", "") or f"{count}/{count}" in screen:
                return (time.perf_counter() - t0) * 1000
            time.sleep(0.01)
        return None
    finally:
        subprocess.run([tmux, "-L", server, "kill-server"], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="maillab-bench-mua-"))
    state = work / "state"
    print(f"generating {args.messages} messages ...", flush=True)
    bench_imap.generate(state / "mail" / "syr.edu" / "mafudge", args.messages)
    lab = bench_imap.Lab(state)
    lab.start()
    try:
        ca = state / "tls" / "ca.pem"
        runs = [asyncio.run(mua_run(lab.imap, ca)) for _ in range(args.runs + 1)][1:]   # the first warms the index
        ours = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        theirs = [neomutt_first_screen(lab.imap, ca, work, args.messages) for _ in range(args.runs)]
        neo = statistics.median(t for t in theirs if t is not None) if all(t is not None for t in theirs) else None
    finally:
        lab.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.messages} messages in INBOX, median of {args.runs} runs (after one warm-up)")
    print(f"  maillab MUA, first screen   {ours['first screen']:8.1f} ms")
    print(f"  maillab MUA, whole list     {ours['whole list']:8.1f} ms")
    print(f"  maillab MUA, open message   {ours['open message']:8.1f} ms")
    if neo is not None:
        print(f"  neomutt, first screen       {neo:8.1f} ms   (maillab's first screen: "
              f"{neo / ours['first screen']:.1f}x faster; whole list {neo / ours['whole list']:.2f}x)")
    else:
        print("  neomutt, first screen       (neomutt or tmux not installed, or it never showed the index)")
    print(f"  client peak RSS             {rss:8.1f} MB (this process: the summaries of every message held)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
