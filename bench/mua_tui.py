#!/usr/bin/env python3
"""The TUI's Mail screen itself on a 10,000-message INBOX: first screen, memory, keys while mail arrives.

bench/mua.py times the Mail screen's IMAP client alone; this runs the real
Textual app (`MailLabApp`, headless: `App.run_test(size=(120, 40))` and its
Pilot, as tests/test_tui_mail.py does) with its lab in the same process and
on the same uvloop loop, as `maillab tui` runs (freeze_gc=True, as its
command line sets).  mafudge@syr.edu's INBOX is bench/mua.py's (bench/imap.py's
generated messages: ~3 KB, a fifth multipart), written into the lab's state
folder before the lab starts.  It measures, in this order:

    first screen      from choosing the identity (the identity picker dismissed with
                      mafudge) until the first page of rows is in #mail-list and a frame
                      of the screen drawn after it (connect, STARTTLS, LOGIN, LIST, STATUS,
                      SELECT, UID SEARCH, the newest page), then until all the rows are
                      there (and drawn), then until the screen is back in IDLE; the first
                      run on a lab that never opened the INBOX ("cold"), then --runs more
                      by choosing mafudge again (i), the median of those reported
    memory            VmRSS of the process (/proc/self/status) with the lab only, with the
                      whole INBOX listed, and after the flood; VmHWM (the peak) at the end
    keys, quiet       down, up, pagedown, pageup, Enter (open the message), h (headers)
                      on the list, ~50 ms apart, no mail arriving: the baseline
    keys, mail in     the same while another process (spawned) feeds mafudge's INBOX over
                      the lab's SMTP port (--senders persistent sessions, paced together at
                      --rate messages per second, ~1 KB each) for --seconds; the rate the lab
                      really accepted (250 after DATA) and delivered is printed

"In the list" is polled every millisecond (so up to one turn of a busy loop
late); "on screen" is the end of the first frame of the Mail screen composed
with that many rows (Screen._compositor_refresh, wrapped on the screen).

A key is posted as Pilot.press posts it (a Key event through the headless
driver).  "Handled" is when the key's action returned (App._dispatch_action,
wrapped on this app), for Enter when the message is in the reader
(MailScreen.render_message, wrapped, returned with MailScreen.current on the
row's UID); "on screen" is the end of the first frame composed after the
action began (a move that scrolls composes its frame inside the action), for
Enter after the reader was drawn.  The next key goes ~50 ms after the last
(--key-interval), never before the last one is on screen or given up (10 s).
Pilot.press itself is not the clock: it waits for the process to go idle
twice (textual._wait.wait_for_idle: 20 ms sleeps until the CPU rests, up to
1 s each), so it measures how busy the lab is, not the key; its times with
no mail arriving are printed for reference.  Headless, the frame is composed
but not written to a terminal (bench/tui.py measures that part on a pty).
The senders stop at --seconds: what the lab was too slow to take by then is
not sent, and the rate printed is what it accepted.  Meanwhile the loop's
lateness is sampled (a 5 ms sleeper), the garbage collector's pauses
(gc.callbacks) and each refresh of the list after IDLE's news
(MailScreen._refresh, wrapped).  With the Mail screen closed again, the same
flood shows what the lab accepts with the TUI on its Dialogues panel
(--no-baseline skips it).

    python3 bench/mua_tui.py                         # 10,000 messages, 10 s at 500 msg/s
    python3 bench/mua_tui.py --messages 2000 --seconds 5
    python3 bench/mua_tui.py --profile /tmp/mua_tui.prof   # cProfile of the loop thread during the flood
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import bisect  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_mua", os.path.join(_HERE, "mua.py"))
bench_mua = importlib.util.module_from_spec(_spec)          # type: ignore[arg-type]
sys.modules["bench_mua"] = bench_mua
_spec.loader.exec_module(bench_mua)                         # type: ignore[union-attr]
bench_imap = bench_mua.bench_imap                           # generate(), free_offset(), USER

KEYS = ("down", "down", "down", "up", "pagedown", "pagedown", "pageup", "enter", "down", "enter", "h", "h", "up")
KEY_TARGET_MS = 100.0
RSS_TARGET_MB = 150.0
SENDER = "santa@northpole.org"


def status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


# ---- the mail that arrives (a process of its own) --------------------------------------------

def flood_message(i: int) -> bytes:
    """About 1 KB, CRLF, no line starting with a dot."""
    body = "".join(f"line {n:02d} of flood message {i}: the quick brown fox jumps over the lazy dog\r\n"
                   for n in range(11))
    return (f"From: Santa Claus <{SENDER}>\r\nTo: Michael Fudge <{bench_imap.USER}>\r\n"
            f"Subject: flood {i}\r\nDate: Mon, 01 Dec 2025 10:00:00 +0000\r\n"
            f"Message-ID: <flood.{i}.{os.getpid()}@northpole.org>\r\n\r\n{body}").encode()


async def _reply(reader: asyncio.StreamReader, want: bytes) -> None:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            if not line.startswith(want):
                raise RuntimeError(line[:100].decode("ascii", "replace"))
            return


async def _flood(port: int, rate: float, seconds: float, senders: int, conn) -> dict:
    """`senders` persistent SMTP sessions taking turns on one schedule of `rate` messages per second."""
    t0 = time.monotonic()
    conn.send(("started", time.time()))
    state = {"next": 0, "ok": 0, "errors": 0, "late": 0, "connections": 0}
    last_error = ""

    async def session() -> None:
        nonlocal last_error
        reader = writer = None
        while True:
            i = state["next"]
            due = i / rate
            now = time.monotonic() - t0
            if due >= seconds or now >= seconds:       # what is not out by then is not sent
                break
            state["next"] += 1
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 0.1:
                state["late"] += 1                 # the lab is behind: this one goes out late
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    state["connections"] += 1
                    await _reply(reader, b"220")
                    writer.write(b"EHLO flood.northpole.org\r\n")
                    await _reply(reader, b"250")
                for line, want in ((f"MAIL FROM:<{SENDER}>\r\n".encode(), b"250"),
                                   (f"RCPT TO:<{bench_imap.USER}>\r\n".encode(), b"250"), (b"DATA\r\n", b"354")):
                    writer.write(line)
                    await _reply(reader, want)
                writer.write(flood_message(i) + b".\r\n")
                await _reply(reader, b"250")
                state["ok"] += 1
            except Exception as e:                 # noqa: BLE001 -- counted, the session starts again
                state["errors"] += 1
                last_error = f"{type(e).__name__}: {e}"
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.05)
        if writer is not None:
            try:
                writer.write(b"QUIT\r\n")
                await asyncio.wait_for(_reply(reader, b"221"), 5)
            except Exception:                      # noqa: BLE001
                pass
            writer.close()

    await asyncio.gather(*(session() for _ in range(senders)))
    return {**state, "offered": state["next"], "wall": time.monotonic() - t0, "last_error": last_error}


def flood(conn) -> None:
    """The sender process: runs each (port, rate, seconds, senders) it is sent, until None."""
    while (job := conn.recv()) is not None:
        conn.send(("done", asyncio.run(_flood(*job, conn))))


# ---- the TUI ---------------------------------------------------------------------------------

class Probe:
    """Hooks on one app and its Mail screen: when actions run, when the reader is drawn, when
    frames are composed, how late the loop runs, how long the garbage collector pauses."""

    def __init__(self, app) -> None:
        self.app = app
        self.actions: list[tuple[float, float, str]] = []      # (start, end, action)
        self.renders: list[tuple[float, float]] = []           # MailScreen.render_message
        self.refreshes: list[float] = []                       # MailScreen._refresh, ms each
        self.frames: list[float] = []
        self.frame_rows: list[int] = []                        # #mail-list's rows in each frame
        self.stalls: list[float] = []
        self.gc_pauses: list[float] = []
        self._gc_start = 0.0
        self._watched: set[int] = set()
        dispatch = app._dispatch_action

        async def dispatched(namespace, name, params):
            start = time.perf_counter()
            try:
                return await dispatch(namespace, name, params)
            finally:
                self.actions.append((start, time.perf_counter(), name))
        app._dispatch_action = dispatched
        gc.callbacks.append(self._gc)
        self._ticker = asyncio.ensure_future(self._tick())

    def watch(self, screen) -> None:
        """Its frames (a move that scrolls composes one inside the action), its reader's drawing."""
        if id(screen) in self._watched:
            return
        self._watched.add(id(screen))
        refresh, render = screen._compositor_refresh, screen.render_message
        news = getattr(screen, "_refresh", None)      # the folder again, after IDLE said EXISTS
        listing = screen.query_one("#mail-list")

        def composed() -> None:
            refresh()
            self.frames.append(time.perf_counter())
            self.frame_rows.append(listing.row_count)

        def rendered() -> None:
            start = time.perf_counter()
            render()
            self.renders.append((start, time.perf_counter()))
        screen._compositor_refresh = composed
        screen.render_message = rendered
        if news is not None:
            async def refreshed() -> None:
                start = time.perf_counter()
                try:
                    await news()
                finally:
                    self.refreshes.append((time.perf_counter() - start) * 1000)
            screen._refresh = refreshed

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self._gc_start:
            self.gc_pauses.append((time.perf_counter() - self._gc_start) * 1000)

    async def _tick(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            self.stalls.append((time.perf_counter() - t - 0.005) * 1000)

    def close(self) -> None:
        self._ticker.cancel()
        gc.callbacks.remove(self._gc)

    async def frame_with(self, rows: int, since: int, timeout: float = 5.0) -> float | None:
        """The end of the first frame (of those after the `since`-th) drawn with `rows` rows or more."""
        deadline = time.perf_counter() + timeout
        while True:
            for i in range(since, len(self.frames)):
                if self.frame_rows[i] >= rows:
                    return self.frames[i]
            since = len(self.frames)
            if time.perf_counter() > deadline:
                return None
            await asyncio.sleep(0.001)

    async def frame_after(self, t: float, timeout: float = 5.0) -> float | None:
        """The end of the first frame composed at or after `t`."""
        deadline = time.perf_counter() + timeout
        while True:
            i = bisect.bisect_left(self.frames, t)
            if i < len(self.frames):
                return self.frames[i]
            if time.perf_counter() > deadline:
                return None
            await asyncio.sleep(0.001)


async def wait(predicate, timeout: float, step: float = 0.001) -> float | None:
    """perf_counter() when `predicate()` is first seen true (polled every `step`), or None."""
    deadline = time.perf_counter() + timeout
    while True:
        if predicate():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            return None
        await asyncio.sleep(step)


async def open_inbox(app, pilot, probe: Probe, count: int, first_page: int, key: str) -> dict[str, float]:
    """Choose mafudge in the identity picker (opened with `key`); ms to the first page, all rows, IDLE."""
    from maillab.mua.identity import find
    from maillab.tui.mail.dialogs import IdentityScreen
    from maillab.tui.mail.screen import MailScreen
    from maillab.tui.rowlist import RowList

    await pilot.press(key)
    if await wait(lambda: isinstance(app.screen, IdentityScreen), 10) is None:
        raise SystemExit(f"the identity picker did not open ({key})")
    picker = app.screen
    mail = app.screen_stack[-2]
    assert isinstance(mail, MailScreen)
    probe.watch(mail)
    listing = mail.query_one("#mail-list", RowList)
    xray = mail.query_one("#mail-xray")
    seen_before, frames = len(xray.lines_seen), len(probe.frames)
    t0 = time.perf_counter()
    picker.dismiss(find(app.lab.world, bench_imap.USER))
    # the old list is cleared first (a second run): rows counted once this login's SELECT went out
    selected = await wait(lambda: any(" SELECT " in line for line in xray.lines_seen[seen_before:]), 60)
    frames = len(probe.frames)          # from here on the old identity's rows are gone
    t_rows = await wait(lambda: listing.row_count >= min(first_page, count), 60)
    if selected is None or t_rows is None:
        raise SystemExit("the first page never came")
    t_first = await probe.frame_with(min(first_page, count), frames)
    t_all = await wait(lambda: listing.row_count >= count, 300)
    if t_all is None:
        raise SystemExit(f"the list never had {count} rows ({listing.row_count})")
    t_all_drawn = await probe.frame_with(count, frames)
    t_idle = await wait(lambda: app.screen is mail and mail.client is not None
                        and any(line.startswith("C: ") and line.endswith(" IDLE")
                                for line in xray.lines_seen[-20:]), 60)
    ms = lambda t: (t - t0) * 1000 if t is not None else float("nan")   # noqa: E731
    return {"first page in the list": ms(t_rows), "first page on screen": ms(t_first),
            "all rows in the list": ms(t_all), "all rows on screen": ms(t_all_drawn),
            "back in IDLE": ms(t_idle), "xray lines": len(xray.lines_seen) - seen_before}


async def press_keys(app, pilot, probe: Probe, seconds: float | None, interval: float, done=None) -> list[dict]:
    """Keys on the list, `interval` apart (never before the last one is on screen): for `seconds`,
    or until `done()`."""
    from textual import events
    from maillab.tui.rowlist import RowList

    mail = app.screen
    listing = mail.query_one("#mail-list", RowList)
    listing.focus()
    await asyncio.sleep(0.1)
    out = []
    start = time.perf_counter()
    n = 0
    while (seconds is not None and time.perf_counter() - start < seconds) or (done is not None and not done()):
        key = KEYS[n % len(KEYS)]
        n += 1
        if key in ("up", "pageup") and listing.cursor_row == 0:
            key = key.replace("up", "down")               # a key that changes nothing draws nothing
        uid = int(listing.keys()[listing.cursor_row]) if listing.row_count else None
        actions, renders = len(probe.actions), len(probe.renders)
        sent = time.perf_counter()
        app._driver.send_message(events.Key(key, {"enter": "\r", "h": "h"}.get(key)))
        if key == "enter":          # the message fetched and in the reader
            done_at = await wait(lambda: len(probe.renders) > renders and mail.current is not None
                                 and mail.current[0] == uid, 10)
            change = probe.renders[-1] if done_at is not None else None
        else:                       # the key's action ran
            done_at = await wait(lambda: len(probe.actions) > actions, 10)
            change = probe.actions[actions][:2] if done_at is not None else None
        handled = change[1] if change else None
        drawn = await probe.frame_after(change[0]) if change else None
        out.append({"key": key, "handled": (handled - sent) * 1000 if handled else None,
                    "drawn": (drawn - sent) * 1000 if drawn else None})
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - sent)))
    return out


def key_stats(rows: list[dict], what: str = "drawn") -> tuple[int, float, float, float, int]:
    values = [r[what] for r in rows if r[what] is not None]
    return len(values), percentile(values, 50), percentile(values, 95), max(values, default=float("nan")), \
        sum(1 for r in rows if r[what] is None)


def maildir_count(inbox: Path) -> int:
    return sum(len(os.listdir(inbox / sub)) for sub in ("new", "cur"))


async def run(args, state: Path, ours) -> dict:
    from maillab.base.clock import Clock
    from maillab.lab.state import StateDir
    from maillab.lab.supervisor import Lab
    from maillab.lab.world import load_world
    from maillab.net.ports import Ports
    from maillab.tui.app import MailLabApp

    out: dict = {}
    offset = bench_imap.free_offset()
    lab = Lab(world=load_world(), state=StateDir(state), ports=Ports(offset), clock=Clock())
    app = MailLabApp(lab, freeze_gc=True)
    inbox = state / "mail" / "syr.edu" / "mafudge"
    async with app.run_test(size=(120, 40)) as pilot:
        if await wait(lambda: app.lab_running or app.startup_error, 30, 0.01) is None or not app.lab_running:
            raise SystemExit(f"the lab did not start: {app.startup_error}")
        probe = Probe(app)
        await asyncio.sleep(0.5)
        out["rss lab"] = status_mb("VmRSS")
        first_page = getattr(sys.modules.get("maillab.tui.mail.screen"), "FIRST_PAGE", bench_mua.FIRST_PAGE)
        out["opens"] = [await open_inbox(app, pilot, probe, args.messages, first_page, "m")]
        for _ in range(args.runs):
            out["opens"].append(await open_inbox(app, pilot, probe, args.messages, first_page, "i"))
        await asyncio.sleep(0.5)
        out["rss listed"] = status_mb("VmRSS")
        out["hwm listed"] = status_mb("VmHWM")

        # pilot.press for reference, then the quiet baseline
        mail = app.screen
        mail.query_one("#mail-list").focus()
        pressed = []
        for key in ("down", "up") * 5:
            t = time.perf_counter()
            await pilot.press(key)
            pressed.append((time.perf_counter() - t) * 1000)
        out["pilot.press"] = pressed
        probe.stalls.clear()
        probe.gc_pauses.clear()
        out["keys quiet"] = await press_keys(app, pilot, probe, 5.0, args.key_interval)
        out["stalls quiet"], out["gc quiet"] = list(probe.stalls), list(probe.gc_pauses)

        # the flood
        before = maildir_count(inbox)
        ours.send((lab.ports.smtp, args.rate, args.seconds, args.senders))
        if await wait(lambda: ours.poll(), 60, 0.01) is None:
            raise SystemExit("the sender process did not start")
        ours.recv()
        t_flood = time.perf_counter()
        await asyncio.sleep(min(1.0, args.seconds / 10))     # the flood builds up first
        probe.stalls.clear()
        probe.gc_pauses.clear()
        probe.refreshes.clear()
        profiler = None
        if args.profile:
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        out["keys flood"] = await press_keys(app, pilot, probe, None, args.key_interval, done=ours.poll)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        out["stalls flood"], out["gc flood"] = list(probe.stalls), list(probe.gc_pauses)
        out["refreshes flood"] = list(probe.refreshes)
        kind, result = ours.recv()
        assert kind == "done", kind
        t_end = time.perf_counter()
        out["flood"] = result
        out["delivered at end"] = maildir_count(inbox) - before
        out["listed at end"] = mail.query_one("#mail-list").row_count - args.messages
        out["rss flood"] = status_mb("VmRSS")
        # the list catches up with the Maildir
        listing = mail.query_one("#mail-list")
        caught = await wait(lambda: listing.row_count >= maildir_count(inbox), 120, 0.05)
        out["catch-up"] = (caught - t_end) * 1000 if caught is not None else None
        out["listed after"] = listing.row_count
        out["flood wall"] = t_end - t_flood
        out["rss end"] = status_mb("VmRSS")
        out["hwm end"] = status_mb("VmHWM")
        if args.baseline:       # the same flood with the Mail screen closed: what the lab takes alone
            await pilot.press("escape")
            if await wait(lambda: app.screen is not mail, 10) is None:
                raise SystemExit("the Mail screen did not close")
            await asyncio.sleep(1.0)
            probe.stalls.clear()
            probe.gc_pauses.clear()
            before = maildir_count(inbox)
            ours.send((lab.ports.smtp, args.rate, args.seconds, args.senders))
            await wait(lambda: ours.poll(), 60, 0.01)
            ours.recv()
            await wait(lambda: ours.poll(), 600, 0.05)
            kind, out["baseline"] = ours.recv()
            out["baseline delivered"] = maildir_count(inbox) - before
            out["stalls baseline"], out["gc baseline"] = list(probe.stalls), list(probe.gc_pauses)
        probe.close()
        errors = lab.state.log_dir / "tui-errors.log"
        out["tui errors"] = errors.read_text()[-2000:] if errors.exists() else ""
    return out


def print_keys(title: str, rows: list[dict]) -> None:
    print(f"  {title}")
    for what, label in (("handled", "handled (action returned / message in the reader)"),
                        ("drawn", "on screen (next frame composed)")):
        n, p50, p95, top, missed = key_stats(rows, what)
        print(f"    {label:<52} {n:4d} keys  p50 {p50:7.1f}  p95 {p95:7.1f}  max {top:7.1f} ms"
              + (f"  ({missed} never)" if missed else ""))
    by_key: dict[str, list[float]] = {}
    for r in rows:
        if r["drawn"] is not None:
            by_key.setdefault(r["key"], []).append(r["drawn"])
    print("    on screen by key, p50/p95/max ms: " + ", ".join(
        f"{k} {percentile(v, 50):.0f}/{percentile(v, 95):.0f}/{max(v):.0f}" for k, v in sorted(by_key.items())))


def print_loop(title: str, stalls: list[float], pauses: list[float], seconds: float) -> None:
    big = [s for s in stalls if s > 50]
    print(f"  {title}: loop late p50 {percentile(stalls, 50):.1f} p95 {percentile(stalls, 95):.1f} max "
          f"{max(stalls, default=float('nan')):.0f} ms, {len(big)} stalls > 50 ms; gc {len(pauses)} "
          f"collections, {sum(pauses):.0f} ms in all, longest {max(pauses, default=0):.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long mail arrives (10)")
    parser.add_argument("--rate", type=float, default=500.0, help="messages per second offered (500)")
    parser.add_argument("--senders", type=int, default=8, help="persistent SMTP sessions feeding it (8)")
    parser.add_argument("--key-interval", type=float, default=0.05, help="seconds between keys (0.05)")
    parser.add_argument("--runs", type=int, default=3, help="warm openings of the INBOX after the cold one (3)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the same flood with the Mail screen closed (the Dialogues panel on screen)")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the loop thread while mail arrives")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    from maillab.base import eventloop

    work = Path(tempfile.mkdtemp(prefix="maillab-bench-mua-tui-"))
    state = work / "state"
    print(f"generating {args.messages} messages ...", flush=True)
    bench_imap.generate(state / "mail" / "syr.edu" / "mafudge", args.messages)
    # the sender process starts before the app: spawned from inside the running app, the
    # resource tracker's fork_exec refused the descriptors it was given
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    sender = ctx.Process(target=flood, args=(theirs,), daemon=True)
    sender.start()
    try:
        with eventloop.runner() as runner:
            out = runner.run(run(args, state, ours))
    finally:
        if sender.is_alive():
            try:
                ours.send(None)
            except OSError:
                pass
            sender.join(15)
            if sender.is_alive():
                sender.terminate()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    opens = out["opens"]
    try:
        root = os.path.dirname(_HERE)
        head = subprocess.run(["git", "-C", root, "log", "-1", "--format=%h %cs"], capture_output=True,
                              text=True).stdout.strip()
        local = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "maillab"], capture_output=True,
                               text=True).stdout.split("\n")
        version = f"{head}" + (f", {len([x for x in local if x])} file(s) under maillab/ changed in the work tree"
                               if any(local) else "")
    except OSError:
        version = "?"
    warm = opens[1:] or opens
    print(f"\nthe TUI's Mail screen (headless, 120x40, lab in the process), {args.messages} messages in INBOX"
          f" (code: {version})")
    print(f"  {'':<26} {'cold':>9} {'warm':>9}   (warm: median of {len(warm)})")
    for k in ("first page in the list", "first page on screen", "all rows in the list", "all rows on screen",
              "back in IDLE"):
        print(f"  {k:<26} {opens[0][k]:9.1f} {statistics.median(r[k] for r in warm):9.1f} ms")
    print(f"  X-ray lines per opening    {opens[0]['xray lines']:9d}")
    print(f"  RSS, lab only (no Mail screen yet)      {out['rss lab']:7.1f} MB")
    print(f"  RSS, {args.messages} listed                  {out['rss listed']:7.1f} MB   "
          f"(VmHWM {out['hwm listed']:.1f} MB; target < {RSS_TARGET_MB:.0f} MB)")
    print(f"  RSS as the flood ended                  {out['rss flood']:7.1f} MB")
    print(f"  RSS after the flood ({out['listed after']} listed)   {out['rss end']:7.1f} MB   "
          f"(VmHWM {out['hwm end']:.1f} MB)")
    print(f"  pilot.press('down'/'up'), no mail arriving: median {statistics.median(out['pilot.press']):.0f} ms, "
          f"max {max(out['pilot.press']):.0f} ms (Textual's wait_for_idle: not the clock here)")
    print_keys("keys, no mail arriving", out["keys quiet"])
    print_loop("no mail arriving", out["stalls quiet"], out["gc quiet"], 5.0)
    f = out["flood"]
    rate = f["ok"] / f["wall"]
    print(f"  mail arriving: {args.senders} persistent SMTP sessions (asyncio, own process) to 127.0.0.1:smtp, "
          f"offered {args.rate:.0f}/s for {args.seconds:g} s: {f['ok']} accepted in {f['wall']:.1f} s = "
          f"{rate:.0f} msg/s ({f['errors']} errors, {f['late']} sent >100 ms late, {f['connections']} connections"
          + (f"; last error {f['last_error']}" if f["last_error"] else "") + ")")
    print(f"    in the Maildir when it ended {out['delivered at end']}, in the list {out['listed at end']}; "
          + (f"the list had them all {out['catch-up']:.0f} ms later" if out["catch-up"] is not None
             else "the list never caught up (120 s)"))
    print_keys(f"keys while {rate:.0f} msg/s arrive", out["keys flood"])
    r = out["refreshes flood"]
    if r:
        print(f"  the list refreshed {len(r)} times (IDLE said EXISTS: UID SEARCH, the new rows, LIST/STATUS), "
              f"each p50 {percentile(r, 50):.0f} ms, p95 {percentile(r, 95):.0f} ms, max {max(r):.0f} ms "
              f"(wall time, the lab's answers included)")
    print_loop("while mail arrives", out["stalls flood"], out["gc flood"], args.seconds)
    if "baseline" in out:
        b = out["baseline"]
        print(f"  the same flood with the Mail screen closed (Dialogues panel shown): {b['ok']} accepted in "
              f"{b['wall']:.1f} s = {b['ok'] / b['wall']:.0f} msg/s ({b['errors']} errors, {b['late']} late), "
              f"{out['baseline delivered']} in the Maildir when it ended")
        print_loop("  with the Mail screen closed", out["stalls baseline"], out["gc baseline"], args.seconds)
    n, p50, p95, top, missed = key_stats(out["keys flood"])
    checks = [("RSS", out["hwm listed"] < RSS_TARGET_MB,
               f"VmHWM {out['hwm listed']:.0f} MB with {args.messages} listed < {RSS_TARGET_MB:.0f} MB"),
              ("key p95", p95 < KEY_TARGET_MS and not missed,
               f"{p95:.0f} ms on screen at {rate:.0f} msg/s < {KEY_TARGET_MS:.0f} ms"),
              ("rate", rate >= 0.95 * args.rate, f"{rate:.0f} msg/s accepted of {args.rate:.0f} offered")]
    print("\n".join(f"  {'PASS' if ok else 'MISS'}  {name:<8} {text}" for name, ok, text in checks))
    if out["tui errors"]:
        print(f"TUI errors logged:\n{out['tui errors']}")
    if args.profile:
        import pstats
        print(f"\ncProfile of the loop thread while mail arrived ({args.profile}), by own time:")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
