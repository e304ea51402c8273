#!/usr/bin/env python3
"""TUI benchmark: is the terminal UI still quick while mail floods the lab it embeds?

It runs the real thing: `maillab tui` in a pseudo-terminal (120x40, as a
user's terminal), reading everything it draws, and measures

  startup      from spawning the process to its first frame (the header's
               "world default" drawn on the terminal), and to the SMTP port
               accepting connections (the lab ready); several runs
  key presses  while a paced load generator (its own process) offers
               --rate messages per second (1 KB, one connection each) to
               smtp1.syr.edu, a key every --key-interval: "e" on the
               Dialogues panel (explain on/off), or a number key to another
               panel and back; timed from writing the key to the pty until
               the text it changes is drawn (handling, layout, render, output)
  memory       the TUI process's RSS, sampled every second under load (peak)

Targets (the issue): key press p95 < 100 ms at 500 msg/s, RSS < 300 MB,
first frame < 1.5 s; and the mail flows: 95% of the offered load accepted,
and 95% of what was accepted delivered by the time the load ends (a queue
that grows all the while is not a flow).  Prints the figures and whether each target is met, and
(unless --no-baseline) what the same load gets from `maillab serve`, the lab
without the TUI: the TUI can only be as fast as the engine it shares a loop
with.

    python3 bench/tui.py               # 30 s of load at 500 msg/s
    python3 bench/tui.py --quick       # 10 s
"""

from __future__ import annotations

import os
import sys

# Run as `python3 bench/tui.py`, bench/ is sys.path[0]: bench/queue.py would shadow `queue`.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import fcntl  # noqa: E402
import importlib.util  # noqa: E402
import multiprocessing  # noqa: E402
import pty  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import termios  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

_spec = importlib.util.spec_from_file_location("maillab_bench_ingest", os.path.join(_HERE, "ingest.py"))
assert _spec is not None and _spec.loader is not None
ingest = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ingest)      # the load generator's SMTP transaction, free offsets, /proc readers

COLUMNS, ROWS = 120, 40
FIRST_FRAME = b"world default"
KEY_TARGET_MS = 100.0
RSS_TARGET_MB = 300.0
STARTUP_TARGET = 1.5
# key -> text that only that panel draws (its hint line): seeing it means the switch is on screen
PANEL_MARKS = {"2": b"queued on all hosts", "3": b"Select a host, then", "4": b"records in",
               "5": b"Recent deliveries into", "6": b"accounts,", "7": b"filter: words",
               "8": b"one point per second", "1": b"explain"}


class Terminal:
    """`maillab tui` on a pty of COLUMNS x ROWS; a thread drains what it draws."""

    def __init__(self, state: Path, offset: int) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS))
        self.t_spawn = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "maillab", "tui", "--state", str(state),
                                      "--port-offset", str(offset)],
                                     stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self._buf = bytearray()
        self._cond = threading.Condition()
        self.received = 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 1 << 16)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self._buf += b"\0EOF"
                    self._cond.notify_all()
                    return
                self.received += len(data)
                self._buf += data
                del self._buf[:-(1 << 20)]          # keep the last MiB: enough to find a mark
                self._cond.notify_all()

    def mark(self) -> int:
        """A position in the output: `wait_for` looks only at what comes after it."""
        with self._cond:
            self._buf.clear()
            return 0

    def wait_for(self, text: bytes, timeout: float) -> float | None:
        """Monotonic time when `text` appeared after the last mark, or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while text not in self._buf:
                if b"\0EOF" in self._buf:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return time.monotonic()

    def press(self, key: str) -> None:
        os.write(self.master, key.encode())

    def quit(self) -> int:
        if self.proc.poll() is None:
            self.press("q")
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(5)


def wait_port(port: int, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ingest._can_connect("127.0.0.1", port):
            return time.monotonic()
        time.sleep(0.005)
    return None


# --------------------------------------------------------------------------
# the paced load generator (its own process)
# --------------------------------------------------------------------------
async def _paced(port: int, rate: float, seconds: float, size: int, concurrency: int) -> dict:
    prefix, suffix = ingest.message_parts(size)
    slots = asyncio.Semaphore(concurrency)
    ok = errors = late = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        nonlocal ok, errors
        try:
            async with asyncio.timeout(ingest.MESSAGE_TIMEOUT):
                await ingest._transaction("127.0.0.1", port, prefix + b"%09d" % i + suffix)
            ok += 1
        except Exception:
            errors += 1
        finally:
            slots.release()

    t0 = time.monotonic()
    i = 0
    while (now := time.monotonic() - t0) < seconds:
        due = i / rate
        if due > now:
            await asyncio.sleep(due - now)
        if slots.locked():
            late += 1                                 # the lab is behind: we wait for a slot
        await slots.acquire()
        task = asyncio.ensure_future(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    await asyncio.gather(*tasks)
    return {"offered": i, "ok": ok, "errors": errors, "late": late, "wall": time.monotonic() - t0}


def paced(port: int, rate: float, seconds: float, size: int, concurrency: int) -> dict:
    return asyncio.run(_paced(port, rate, seconds, size, concurrency))


# --------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def measure_startup(work: Path, runs: int, avoid: set[int]) -> tuple[list[float], list[float]]:
    frames, ready = [], []
    for n in range(runs):
        offset = ingest.free_offset(avoid)
        term = Terminal(work / f"startup-{n}", offset)
        first = term.wait_for(FIRST_FRAME, 30)
        up = wait_port(2525 + offset, 30)
        if first is None or up is None:
            term.quit()
            raise SystemExit(f"maillab tui did not start (run {n + 1}); see {work}")
        frames.append(first - term.t_spawn)
        ready.append(up - term.t_spawn)
        term.quit()
    return frames, ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="messages per second offered (500)")
    parser.add_argument("--seconds", type=float, default=30.0, help="load duration (30)")
    parser.add_argument("--size", type=int, default=1024, help="message size in octets (1024)")
    parser.add_argument("--concurrency", type=int, default=64, help="sessions at most at once (64)")
    parser.add_argument("--key-interval", type=float, default=0.5, help="seconds between key presses (0.5)")
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 s of load, one start-up run")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the same load against `maillab serve` (the lab without the TUI)")
    parser.add_argument("--work", type=Path, metavar="DIR",
                        help="where the temporary folder goes (default: beside the default state folder); "
                             "a tmpfs such as /dev/shm takes the disk out of an A/B of UI changes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.startup_runs = 10.0, 1

    work = ingest.work_folder("maillab-bench-tui-", args.work)
    avoid: set[int] = set()
    try:
        frames, ready = measure_startup(work, args.startup_runs, avoid)
        print(f"start-up: first frame {statistics.median(frames):.2f} s (max {max(frames):.2f} s), "
              f"lab ready {statistics.median(ready):.2f} s, {len(frames)} run(s)", flush=True)

        offset = ingest.free_offset(avoid)
        state = work / "load"
        term = Terminal(state, offset)
        if term.wait_for(FIRST_FRAME, 30) is None or wait_port(2525 + offset, 30) is None:
            raise SystemExit("maillab tui did not start")
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            load = pool.apply_async(paced, (2525 + offset, args.rate, args.seconds, args.size,
                                            args.concurrency))
            time.sleep(2.0)                          # let the flood build up first
            latencies: dict[str, list[float]] = {"toggle": [], "switch": []}
            by_panel: dict[str, list[float]] = {}
            missed = 0
            rss_peak = 0
            cpu0, t0 = ingest.proc_cpu(term.proc.pid), time.monotonic()
            explain = False
            n = 0
            next_rss = 0.0
            while not load.ready():
                # on the Dialogues panel, "e" twice (explain on, off); then to another panel and back
                step = n % 4
                if step < 2:
                    key, kind = "e", "toggle"
                    explain = not explain
                    mark = b"e explain ON" if explain else b"e explain off"
                else:
                    key = str(2 + (n // 4) % 7) if step == 2 else "1"
                    kind, mark = "switch", PANEL_MARKS[key]
                n += 1
                term.mark()
                sent = time.monotonic()
                term.press(key)
                seen = term.wait_for(mark, 5)
                if seen is None:
                    missed += 1
                else:
                    latencies[kind].append((seen - sent) * 1000)
                    if kind == "switch" and key != "1":
                        by_panel.setdefault(key, []).append((seen - sent) * 1000)
                if time.monotonic() >= next_rss:
                    rss_peak = max(rss_peak, ingest.proc_status_kb(term.proc.pid, "VmRSS"))
                    next_rss = time.monotonic() + 1
                time.sleep(max(args.key_interval - (time.monotonic() - sent), 0))
            cpu = (ingest.proc_cpu(term.proc.pid) - cpu0) / (time.monotonic() - t0) * 100
            result = load.get()
        rss_peak = max(rss_peak, ingest.proc_status_kb(term.proc.pid, "VmRSS"))
        hwm = ingest.proc_status_kb(term.proc.pid, "VmHWM")
        inbox = state / "mail" / "syr.edu" / "mafudge"
        delivered = ingest.maildir_count(inbox / "new") + ingest.maildir_count(inbox / "cur")
        term.quit()
        if term.proc.returncode != 0:
            print(f"warning: maillab tui exited with {term.proc.returncode}")

        rate = result["ok"] / result["wall"]
        every = latencies["toggle"] + latencies["switch"]
        p95 = percentile(every, 95)
        if not args.no_baseline:
            server, _inbox, port = ingest.start_lab(work, "baseline", avoid, None)
            try:
                with ctx.Pool(1) as pool:
                    base = pool.apply(paced, (port, args.rate, args.seconds, args.size, args.concurrency))
            finally:
                server.stop()
            print(f"baseline: the same load against `maillab serve` (no TUI): "
                  f"{base['ok'] / base['wall']:.0f} msg/s accepted")
        print(f"load: {result['ok']} messages accepted in {result['wall']:.1f} s = {rate:.0f} msg/s "
              f"(offered {args.rate:.0f}/s, {result['errors']} errors, {result['late']} sends waited for a "
              f"free session), {delivered} in the Maildir at the end; TUI process CPU {cpu:.0f}%")
        for kind, what in (("toggle", "key on the Dialogues panel (e: explain) to hint redrawn"),
                           ("switch", "key to another panel on screen")):
            values = latencies[kind]
            print(f"{what}: {len(values)} presses, p50 {percentile(values, 50):.0f} ms, "
                  f"p95 {percentile(values, 95):.0f} ms, max {max(values, default=float('nan')):.0f} ms")
        print("  switch to panel N, median ms: " + ", ".join(f"{k}: {statistics.median(v):.0f}"
                                                           for k, v in sorted(by_panel.items())))
        print(f"all key presses: p95 {p95:.0f} ms, {missed} missed")
        print(f"memory: RSS peak {rss_peak / 1024:.0f} MB sampled (VmHWM {hwm / 1024:.0f} MB)")
        checks = [("first frame", statistics.median(frames) < STARTUP_TARGET,
                   f"{statistics.median(frames):.2f} s < {STARTUP_TARGET} s"),
                  ("key press p95", p95 < KEY_TARGET_MS and not missed, f"{p95:.0f} ms < {KEY_TARGET_MS:.0f} ms"),
                  ("RSS", hwm / 1024 < RSS_TARGET_MB, f"{hwm / 1024:.0f} MB < {RSS_TARGET_MB:.0f} MB"),
                  ("load", rate >= 0.95 * args.rate, f"{rate:.0f} msg/s of {args.rate:.0f} offered"),
                  ("delivery", delivered >= 0.95 * result["ok"],
                   f"{delivered} of {result['ok']} accepted in the Maildir when the load ended")]
        print("\n".join(f"  {'PASS' if ok else 'MISS'}  {name:<14} {text}" for name, ok, text in checks))
        return 0 if all(ok for _, ok, _ in checks) else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
