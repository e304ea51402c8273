#!/usr/bin/env python3
"""Queue benchmark: a big deferred queue, and flushing it to a host that came back.

1. Start-up with N deferred messages (default 100,000) in smtp2.syr.edu's spool:
   time from `maillab serve` to "ready" (the replay happens before it), time of
   `maillab queue` listing them all, RSS of the lab, and CPU used while idle for
   a few seconds (the scheduler must wake only for due work).
2. Flush of M deferred messages (default 10,000), side by side:
   - direct: deferred at smtp1.syr.edu, the mailbox host: flushed into the Maildir;
   - relay: deferred at smtp2.syr.edu (the backup MX): flushed over SMTP to
     smtp1.syr.edu, then into the Maildir.
   Each is timed from `maillab queue flush` until every message is in the Maildir.

The spools are generated with the lab's own Spool class (fsync turned off while
generating, to save time: the benchmark measures the lab, not the generator).
Everything runs on loopback; every loop is bounded.  Usage:
    python3 bench/queue.py [--deferred 100000] [--flush 10000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maillab.base.fsutil import finish  # noqa: E402
from maillab.queue.records import Entry, Recipient  # noqa: E402
from maillab.queue.spool import Spool, new_queue_id  # noqa: E402

MESSAGE = (b"Received: from mail.northpole.org (mail.northpole.org [127.0.0.3])\r\n"
           b"\tby smtp2.syr.edu (maillab) with ESMTP id BENCH\r\n\tfor <mafudge@syr.edu>; Mon, 23 Nov 2026\r\n"
           b"From: santa@northpole.org\r\nTo: mafudge@syr.edu\r\nSubject: queued %d\r\n\r\n"
           + b"Ho ho ho, this message waited in the queue.\r\n" * 20)


def generate(state: Path, host: str, count: int, next_attempt: float) -> None:
    spool = Spool(state / "spool" / host)
    now = time.time()
    with mock.patch("os.fsync"):
        for i in range(count):
            body = MESSAGE.replace(b"%d", str(i).encode())
            entry = Entry(new_queue_id(now - count + i), "santa@northpole.org", now - 600, len(body),
                          "mail.northpole.org[127.0.0.3]")
            rcpt = Recipient("mafudge@syr.edu", attempts=1, next_attempt=next_attempt, last_attempt=now - 300,
                             last_result="4.4.1 connect to 127.0.0.1:2525: Connection refused")
            entry.recipients = {rcpt.address: rcpt}
            finish(spool.accept(entry, body))
            spool.record(entry, [rcpt])
    spool.close()
    os.sync()


def free_offset() -> int:
    import socket
    for _ in range(100):
        offset = random.randrange(300, 600) * 100
        try:
            for port in (2525, 2587, 1053, 1143, 1110):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + offset))
            return offset
        except OSError:
            continue
    raise SystemExit("no free port offset")


class Lab:
    def __init__(self, state: Path, offset: int) -> None:
        self.state, self.offset = state, offset
        self.log = open(state.parent / f"serve-{offset}.log", "w+b")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "maillab", "serve", "--state", str(state),
                                      "--port-offset", str(offset)], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 120
        while b"ready" not in self.output():
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"lab did not start:\n{self.output().decode(errors='replace')[-2000:]}")
            time.sleep(0.01)
        self.ready = time.perf_counter() - self.t0

    def output(self) -> bytes:
        self.log.flush()
        return Path(self.log.name).read_bytes()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cli(self, *args: str) -> tuple[float, str]:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "maillab", *args, "--state", str(self.state)],
                             capture_output=True, text=True, timeout=300)
        if out.returncode:
            raise SystemExit(f"maillab {' '.join(args)} failed: {out.stderr}")
        return time.perf_counter() - t, out.stdout

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(60)


def maildir_count(state: Path) -> int:
    root = state / "mail" / "syr.edu" / "mafudge"
    return sum(len(os.listdir(root / sub)) for sub in ("new", "cur") if (root / sub).exists())


def big_queue(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="maillab-bench-") as tmp:
        state = Path(tmp) / "state"
        t = time.perf_counter()
        generate(state, "smtp2.syr.edu", n, time.time() + 30 * 86400)
        print(f"  generated {n} deferred messages in {time.perf_counter() - t:.1f} s", flush=True)
        lab = Lab(state, free_offset())
        try:
            replayed = re.search(rb"(\d+) queued messages? replayed", lab.output())
            assert replayed and int(replayed.group(1)) == n, lab.output()[-500:]
            rss = lab.rss_mb()
            list_time, listing = lab.cli("queue")
            assert f"-- {n} requests" in listing, listing[-300:]
            cpu0 = lab.cpu_seconds()
            time.sleep(5)
            idle_cpu = lab.cpu_seconds() - cpu0
            return {"startup_s": lab.ready, "list_s": list_time, "rss_mb": rss, "idle_cpu_s_per_5s": idle_cpu}
        finally:
            lab.stop()


def flush(m: int, host: str) -> float:
    with tempfile.TemporaryDirectory(prefix="maillab-bench-") as tmp:
        state = Path(tmp) / "state"
        generate(state, host, m, time.time() + 30 * 86400)
        lab = Lab(state, free_offset())
        try:
            t = time.perf_counter()
            lab.cli("queue", "flush")
            deadline = time.time() + 600
            while maildir_count(state) < m:
                if time.time() > deadline:
                    raise SystemExit(f"flush incomplete: {maildir_count(state)} of {m}")
                time.sleep(0.05)
            return m / (time.perf_counter() - t)
        finally:
            lab.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deferred", type=int, default=100_000)
    ap.add_argument("--flush", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="10,000 deferred, 1,000 flushed")
    a = ap.parse_args()
    if a.quick:
        a.deferred, a.flush = 10_000, 1_000
    print(f"1. start-up with {a.deferred} deferred messages", flush=True)
    big = big_queue(a.deferred)
    print(f"2. flushing {a.flush} deferred messages", flush=True)
    direct = flush(a.flush, "smtp1.syr.edu")
    relayed = flush(a.flush, "smtp2.syr.edu")
    print()
    print(f"{'measure':<44} {'value':>10}  target")
    print(f"{'start-up to ready, incl. replay (s)':<44} {big['startup_s']:>10.2f}  < 5")
    print(f"{'maillab queue listing all (s)':<44} {big['list_s']:>10.2f}  < 1")
    print(f"{'RSS with the queue loaded (MB)':<44} {big['rss_mb']:>10.1f}  < 300")
    print(f"{'CPU while idle, 5 s (s)':<44} {big['idle_cpu_s_per_5s']:>10.3f}  ~0 (no polling)")
    print(f"{'flush, direct to the Maildir (msg/s)':<44} {direct:>10.0f}")
    print(f"{'flush, relayed smtp2 -> smtp1 (msg/s)':<44} {relayed:>10.0f}  ratio {relayed / direct:.2f}")


if __name__ == "__main__":
    main()
