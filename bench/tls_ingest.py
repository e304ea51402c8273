#!/usr/bin/env python3
"""TLS benchmark: SMTP ingest with STARTTLS beside plaintext, handshakes per second, idle TLS memory.

In one run, on one `maillab serve` (smtp1.syr.edu, its certificate from the lab CA):

  plaintext   1 KB x 10 sessions, one connection per message (bench/ingest.py's generator)
  starttls    the same, each session doing STARTTLS (verifying smtp1.syr.edu against the
              lab CA) and EHLO again before MAIL: the ratio to plaintext (target >= 0.7x)
  postfix     where Postfix is installed and this runs as root: a private Postfix
              (bench/postfix_ref.py) with smtpd_tls_security_level = may on the lab's own
              certificate for smtp1.syr.edu, fed the same STARTTLS sessions (target: maillab
              >= 1.0x Postfix), and in plaintext
  handshakes  TLS on connect to SMTPS (2465): connect, handshake, read the 220, close, by
              --sessions clients at once: handshakes per second and the server's CPU per
              handshake (1 / that: handshakes per second on one core)
  idle        --idle-sessions sessions held past STARTTLS and the second EHLO: the growth of
              the lab's VmRSS per session, beside the same number of plaintext sessions

Throughput is timed from the first connect until every message is a file in the Maildir's
new/.  See bench/README.md.

    python3 bench/tls_ingest.py --quick        # about 30 s
    python3 bench/tls_ingest.py
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))          # the project, when not installed; bench.*

import argparse  # noqa: E402
import asyncio  # noqa: E402
import concurrent.futures  # noqa: E402
import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import ssl  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench import postfix_ref  # noqa: E402
from bench.ingest import (LAB_HOST, LAB_NAME, MESSAGE_TIMEOUT, SMTP_PORT, generate, hold_idle,  # noqa: E402
                          proc_cpu, proc_status_kb, start_lab, wait_maildir, work_folder)

STARTTLS_TARGET = 0.7           # STARTTLS / plaintext, maillab
POSTFIX_TARGET = 1.0            # maillab / Postfix, both with STARTTLS
SMTPS_PORT = 2465


def run_generator(pool: concurrent.futures.ProcessPoolExecutor, port: int, count: int, sessions: int,
                  ca: str | None) -> dict:
    return pool.submit(generate, LAB_HOST, port, count, 1024, sessions, None, ca).result(
        timeout=MESSAGE_TIMEOUT * (count / sessions + 2))


def ingest(pool: concurrent.futures.ProcessPoolExecutor, port: int, new: Path, count: int, sessions: int,
           ca: str | None, server_cpu) -> dict:
    """`count` 1 KB messages (after a warm-up of 10), timed until all are in `new`."""
    run_generator(pool, port, 10, 5, ca)
    _, base = wait_maildir(new, 10, 30)
    cpu0 = server_cpu()
    g = run_generator(pool, port, count, sessions, ca)
    t_done, n = wait_maildir(new, base + g["ok"], 60 + count * 0.05)
    seconds = t_done - g["t_start"]
    return {"msgs": n - base, "errors": g["errors"], "seconds": seconds, "rate": (n - base) / seconds,
            "cpu_ms": (server_cpu() - cpu0) * 1000 / max(n - base, 1), "p50": g["p50"] * 1000,
            "first_error": g["first_error"]}


async def _handshakes(port: int, count: int, sessions: int, ca: str) -> dict:
    ctx = ssl.create_default_context(cafile=ca)
    todo = iter(range(count))
    done = errors = 0

    async def worker() -> None:
        nonlocal done, errors
        for _ in todo:
            try:
                async with asyncio.timeout(MESSAGE_TIMEOUT):
                    reader, writer = await asyncio.open_connection(LAB_HOST, port, ssl=ctx,
                                                                   server_hostname=LAB_NAME)
                    line = await reader.readline()
                    writer.close()
                    await writer.wait_closed()
                done += line.startswith(b"220")
            except (OSError, ssl.SSLError, TimeoutError):
                errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(sessions)))
    return {"done": done, "errors": errors, "seconds": time.monotonic() - t0}


def handshakes(port: int, count: int, sessions: int, ca: str) -> dict:
    return asyncio.run(_handshakes(port, count, sessions, ca))


def line(name: str, r: dict, extra: str = "") -> str:
    return (f"  {name:<22} {r['msgs']:>6} msgs {r['seconds']:7.2f} s {r['rate']:8.1f} msg/s "
            f"{r['cpu_ms']:6.2f} ms srvCPU/msg  p50 {r['p50']:6.1f} ms  {extra}"
            + (f"  errors {r['errors']}: {r['first_error'][:50]}" if r["errors"] else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="TLS benchmark of maillab: STARTTLS ingest beside plaintext "
                                            "and Postfix, handshakes per second, idle TLS session memory.")
    p.add_argument("--quick", action="store_true", help="small counts: about 30 s")
    p.add_argument("--count", type=int, metavar="N", help="messages per ingest run (default 3000; 500 quick)")
    p.add_argument("--sessions", type=int, default=10, metavar="N", help="concurrent sessions (default 10)")
    p.add_argument("--handshakes", type=int, metavar="N", help="TLS-on-connect handshakes (default 2000)")
    p.add_argument("--idle-sessions", type=int, metavar="N", help="idle sessions held (default 300; 100 quick)")
    p.add_argument("--no-postfix", action="store_true", help="skip the Postfix reference")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args(argv)
    count = args.count or (500 if args.quick else 3000)
    n_hs = args.handshakes or (300 if args.quick else 2000)
    n_idle = args.idle_sessions or (100 if args.quick else 300)
    work = work_folder("maillab-tls-bench-")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    pool.submit(os.getpid).result()
    print(f"maillab TLS benchmark: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, 1 KB x "
          f"{args.sessions} sessions, one connection per message, work folder {work}", flush=True)
    lab, new, port = start_lab(work, "tls", set(), None)
    state = new.parents[3]
    ca = str(state / "tls" / "ca.pem")
    try:
        cpu = lambda: proc_cpu(lab.pid)                                          # noqa: E731
        plain = ingest(pool, port, new, count, args.sessions, None, cpu)
        print(line("maillab plaintext", plain), flush=True)
        tls = ingest(pool, port, new, count, args.sessions, ca, cpu)
        print(line("maillab STARTTLS", tls, f"{tls['rate'] / plain['rate']:.2f}x plaintext"), flush=True)
        smtps = port - SMTP_PORT + SMTPS_PORT
        cpu0 = cpu()
        hs = pool.submit(handshakes, smtps, n_hs, args.sessions, ca).result(timeout=600)
        hs_cpu = (cpu() - cpu0) * 1000 / max(hs["done"], 1)
        print(f"  TLS on connect (SMTPS)  {hs['done']} handshakes in {hs['seconds']:.2f} s: "
              f"{hs['done'] / hs['seconds']:.0f}/s, server CPU {hs_cpu:.2f} ms each "
              f"({1000 / hs_cpu:.0f}/s on one core), errors {hs['errors']}", flush=True)
        before = proc_status_kb(lab.pid, "VmRSS")
        during = hold_idle(port, n_idle, lambda: proc_status_kb(lab.pid, "VmRSS"))
        time.sleep(0.5)
        base = proc_status_kb(lab.pid, "VmRSS")
        during_tls = hold_idle(port, n_idle, lambda: proc_status_kb(lab.pid, "VmRSS"), ca)
        print(f"  idle sessions ({n_idle})      plaintext {(during - before) / n_idle:.1f} KiB each, "
              f"after STARTTLS {(during_tls - base) / n_idle:.1f} KiB each (VmRSS growth)", flush=True)
        host_cert = state / "tls" / "hosts"
        why = postfix_ref.unavailable() if not args.no_postfix else "--no-postfix"
        if why:
            print(f"  postfix: not run ({why})")
        else:
            with postfix_ref.PostfixInstance(postfix_ref.instance_parent(work), "mafudge@syr.edu",
                                             tls=(host_cert / f"{LAB_NAME}.pem", host_cert / f"{LAB_NAME}.key")) as pf:
                pf_cpu = lambda: sum(map(proc_cpu, pf.processes()))                 # noqa: E731
                pf_plain = ingest(pool, pf.port, pf.new_maildir(), count, args.sessions, None, pf_cpu)
                print(line(f"postfix {postfix_ref.version()} plain", pf_plain), flush=True)
                pf_tls = ingest(pool, pf.port, pf.new_maildir(), count, args.sessions, ca, pf_cpu)
                print(line("postfix STARTTLS", pf_tls, f"{pf_tls['rate'] / pf_plain['rate']:.2f}x plaintext"),
                      flush=True)
            ratio = tls["rate"] / pf_tls["rate"]
            print(f"\nmaillab STARTTLS / Postfix STARTTLS: {ratio:.2f}x (target >= {POSTFIX_TARGET}x: "
                  f"{'meets' if ratio >= POSTFIX_TARGET else 'BELOW'})")
        ratio = tls["rate"] / plain["rate"]
        print(f"maillab STARTTLS / plaintext: {ratio:.2f}x (target >= {STARTTLS_TARGET}x: "
              f"{'meets' if ratio >= STARTTLS_TARGET else 'BELOW'})")
    finally:
        lab.stop()
        pool.shutdown(cancel_futures=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
