#!/usr/bin/env python3
"""SMTP ingest benchmark: how fast does smtp1.syr.edu take mail into a Maildir, beside Postfix?

For every (message size, concurrency) pair it drives, one connection per
message (EHLO, MAIL, RCPT, DATA, QUIT, nothing pipelined), in the same run:

  maillab      `maillab serve` in its own process, fresh state folder, fed by
               this script's asyncio load generator (its own process too);
               timed from the first connect until every message is a file in
               <state>/mail/syr.edu/mafudge/new/
  postfix      a private Postfix instance started for the run (bench/postfix_ref.py:
               own config, queue and Maildir in a temporary folder, virtual
               delivery to a Maildir, no DNS, no chroot), fed by the same
               generator and timed the same way (until every message is a
               file in its Maildir's new/); when Postfix is not installed or
               the script is not root, it says so and prints no Postfix ratio
  smtp-source  the lab again, fed by Postfix's smtp-source (when installed)
  bare         a bare aiosmtpd server (handle_DATA returns "250 OK" and
               discards) in its own process, fed by the same generator:
               the library's ceiling; timed until the last QUIT is answered

and prints maillab/Postfix and maillab/bare for every row beside the issue's
targets (>= 2x Postfix at 1 KB, >= 1.5x at 100 KB, >= 0.9x bare aiosmtpd).

It also measures the time from starting `maillab serve` until every endpoint
it prints accepts a connection, the lab's RSS after --rss-messages messages
(1 KB, 10 sessions), and the memory of an idle SMTP session: --idle-sessions
sessions held open past EHLO, the growth of the lab's VmRSS divided by their
number, and Postfix's smtpd processes (one per session: their summed Pss and
VmRSS per process).  Everything runs on loopback and stops by itself (Postfix
too, on an error or Ctrl-C).  See bench/README.md.

    python3 bench/ingest.py --quick          # < 1 minute
    python3 bench/ingest.py                  # the full run
"""

from __future__ import annotations

import os
import sys

# Run as `python3 bench/ingest.py`, bench/ is sys.path[0]: a sibling script
# named like a standard module (bench/queue.py) would shadow it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))          # the project, when not installed; bench.postfix_ref

import argparse  # noqa: E402
import asyncio  # noqa: E402
import concurrent.futures  # noqa: E402
import importlib.util  # noqa: E402
import multiprocessing  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, TypeVar  # noqa: E402

from bench import postfix_ref  # noqa: E402
from maillab.lab.state import default_state_path  # noqa: E402

SENDER = "santa@northpole.org"
RECIPIENT = "mafudge@syr.edu"
LAB_HOST = "127.0.0.1"          # smtp1.syr.edu
LAB_NAME = "smtp1.syr.edu"      # what its certificate names
SMTP_PORT = 2525                # + the port offset
HOST_ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6",
                  "127.0.0.7", "127.0.0.66")
SPEC_PORTS = (1053, 2525, 2587, 2465, 1143, 1993, 1110, 1995)
SMTP_SOURCE = "/usr/sbin/smtp-source"

# The targets, as ratios to what the same run measures.
POSTFIX_TARGET = {1024: 2.0, 102400: 1.5}       # maillab / Postfix (to Maildir), by message size
BARE_TARGET = 0.9                               # maillab / bare aiosmtpd, every size
STARTUP_TARGET = 1.0                            # seconds
RSS_TARGET_MB = 150.0

MESSAGE_TIMEOUT = 60.0          # one SMTP transaction, seconds
STARTUP_TIMEOUT = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


# --------------------------------------------------------------------------
# sizes and formatting
# --------------------------------------------------------------------------
def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("B")
    mult = 1
    if t.endswith("K"):
        mult, t = 1024, t[:-1]
    elif t.endswith("M"):
        mult, t = 1024 * 1024, t[:-1]
    value = int(float(t) * mult)
    if not 200 <= value <= 10 * 1024 * 1024:
        raise argparse.ArgumentTypeError(f"size {text!r} must be between 200 B and 10 MB")
    return value


def size_label(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MB"
    if n % 1024 == 0:
        return f"{n // 1024} KB"
    return f"{n} B"


def int_list(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or any(v < 1 or v > 1000 for v in values):
        raise argparse.ArgumentTypeError("give positive integers (at most 1000), comma-separated")
    return values


def size_list(text: str) -> list[int]:
    return [parse_size(x) for x in text.split(",") if x.strip()]


def message_parts(size: int) -> tuple[bytes, bytes]:
    """(prefix, suffix): prefix + 9 digits + suffix is a message of exactly `size` octets.

    The 9 digits go into the Message-ID, so every message is distinct.  Lines
    are at most 81 octets with CRLF; the message ends with CRLF.
    """
    prefix = (f"From: Santa <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: ingest benchmark\r\n"
              f"Date: Mon, 01 Dec 2025 10:00:00 +0000\r\nMessage-ID: <bench.").encode()
    head_rest = b"@northpole.org>\r\n\r\n"
    room = size - len(prefix) - 9 - len(head_rest)
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqrstu\r\n"  # 80
    full, rest = divmod(room, len(line))
    if rest < 2 and full:
        full, rest = full - 1, rest + len(line)
    if rest < 2:
        raise ValueError(f"message size {size} is too small")
    suffix = head_rest + line * full + b"x" * (rest - 2) + b"\r\n"
    assert len(prefix) + 9 + len(suffix) == size
    return prefix, suffix


# --------------------------------------------------------------------------
# the load generator (runs in its own process)
# --------------------------------------------------------------------------
class SmtpError(Exception):
    pass


async def _reply(reader: asyncio.StreamReader, want: int) -> None:
    """Read one (possibly multi-line) reply; raise unless its code is `want`."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpError(f"connection closed (expected {want})")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            break
        if len(lines) > 100:
            raise SmtpError("reply of more than 100 lines")
    try:
        code = int(lines[-1][:3])
    except ValueError:
        raise SmtpError(f"bad reply {lines[-1][:80]!r}") from None
    if code != want:
        raise SmtpError(f"expected {want}, got {lines[-1].decode('utf-8', 'replace').strip()[:120]}")


async def _starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: ssl.SSLContext) -> None:
    """STARTTLS (verifying smtp1.syr.edu's certificate) and EHLO again, after the first EHLO."""
    writer.write(b"STARTTLS\r\n")
    await _reply(reader, 220)
    await writer.start_tls(tls, server_hostname=LAB_NAME)
    writer.write(b"EHLO bench.northpole.org\r\n")
    await _reply(reader, 250)


async def _transaction(host: str, port: int, message: bytes | tuple[bytes, ...],
                       tls: ssl.SSLContext | None = None) -> None:
    """One SMTP transaction and QUIT (after STARTTLS with `tls`); raise SmtpError on an
    unexpected reply.  `message` may come in parts, written one after the other (a big part
    is never copied)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await _reply(reader, 220)
        writer.write(b"EHLO bench.northpole.org\r\n")
        await _reply(reader, 250)
        if tls is not None:
            await _starttls(reader, writer, tls)
        for command, want in ((f"MAIL FROM:<{SENDER}>\r\n".encode(), 250),
                              (f"RCPT TO:<{RECIPIENT}>\r\n".encode(), 250),
                              (b"DATA\r\n", 354)):
            writer.write(command)
            await _reply(reader, want)
        for part in (message,) if isinstance(message, bytes) else message:
            writer.write(part)
        writer.write(b".\r\n")
        await writer.drain()
        await _reply(reader, 250)
        writer.write(b"QUIT\r\n")
        await _reply(reader, 221)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def tls_client(ca: str | None) -> ssl.SSLContext | None:
    """A client context trusting the lab CA at `ca` (None: plaintext)."""
    return ssl.create_default_context(cafile=ca) if ca else None


async def _generate(host: str, port: int, count: int, size: int, sessions: int, ca: str | None = None) -> dict:
    tls = tls_client(ca)
    prefix, suffix = message_parts(size)   # messages differ only by their Message-ID
    next_index = iter(range(count))
    latencies: list[float] = []
    errors: list[str] = []
    sent_bytes = 0

    async def worker() -> None:
        nonlocal sent_bytes
        for i in next_index:
            message = prefix + b"%09d" % i + suffix
            t = time.monotonic()
            try:
                async with asyncio.timeout(MESSAGE_TIMEOUT):
                    await _transaction(host, port, message, tls)
            except (OSError, ValueError, SmtpError, TimeoutError, asyncio.IncompleteReadError) as e:
                errors.append(f"{type(e).__name__}: {e}")
                continue
            latencies.append(time.monotonic() - t)
            sent_bytes += len(message)

    cpu0 = time.process_time()
    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(sessions)))
    t1 = time.monotonic()
    latencies.sort()
    return {"t_start": t0, "t_end": t1, "ok": len(latencies), "errors": len(errors),
            "first_error": errors[0] if errors else "", "bytes": sent_bytes,
            "cpu": time.process_time() - cpu0,
            "p50": latencies[len(latencies) // 2] if latencies else 0.0,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0}


IDLE_BATCH = 25                 # idle sessions opened at a time
IDLE_SOURCES = 250              # idle sessions per source address (the lab allows 500 per client)


async def _hold_idle(port: int, n: int, measure: Callable[[], T], ca: str | None = None) -> T:
    """Open `n` SMTP sessions, each past its EHLO reply (with `ca`: past STARTTLS and the
    EHLO after it), call `measure()` while all of them are open and idle, then QUIT them.
    They come from 127.0.1.x, IDLE_SOURCES per address."""
    writers: list[asyncio.StreamWriter] = []
    tls = tls_client(ca)

    async def one(i: int) -> None:
        source = f"127.0.1.{1 + i // IDLE_SOURCES}"
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        writers.append(writer)
        await _reply(reader, 220)
        writer.write(b"EHLO bench.northpole.org\r\n")
        await _reply(reader, 250)
        if tls is not None:
            await _starttls(reader, writer, tls)

    try:
        async with asyncio.timeout(MESSAGE_TIMEOUT):
            for start in range(0, n, IDLE_BATCH):
                await asyncio.gather(*(one(i) for i in range(start, min(start + IDLE_BATCH, n))))
        await asyncio.sleep(0.5)            # let the servers settle
        return measure()
    finally:
        for w in writers:
            try:
                w.write(b"QUIT\r\n")
            except (OSError, RuntimeError):
                pass
            w.close()
        await asyncio.sleep(0.2)


def hold_idle(port: int, n: int, measure: Callable[[], T], ca: str | None = None) -> T:
    return asyncio.run(_hold_idle(port, n, measure, ca))


def generate(host: str, port: int, count: int, size: int, sessions: int, cpu: int | None,
             ca: str | None = None) -> dict:
    """Entry point in the generator process (`ca`: STARTTLS, trusting that CA file)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    return asyncio.run(_generate(host, port, count, size, sessions, ca))


# --------------------------------------------------------------------------
# the bare aiosmtpd server (runs as `ingest.py _bare`)
# --------------------------------------------------------------------------
def bare_server_main() -> int:
    from aiosmtpd.smtp import SMTP

    from maillab.base import eventloop     # the loop maillab runs on: the ratio compares our code, not loops

    class Discard:
        async def handle_DATA(self, server, session, envelope) -> str:
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = await loop.create_server(lambda: SMTP(Discard(), hostname="bare.example"),
                                          "127.0.0.1", 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        print(f"listening 127.0.0.1:{port}", flush=True)
        print("ready", flush=True)
        await stop.wait()
        server.close()

    with eventloop.runner() as runner:
        runner.run(main())
    return 0


# --------------------------------------------------------------------------
# processes under test
# --------------------------------------------------------------------------
def _ports_free(offset: int) -> bool:
    checks = [("127.0.0.1", 1053 + offset, socket.SOCK_DGRAM)]
    checks += [(a, p + offset, socket.SOCK_STREAM) for a in HOST_ADDRESSES for p in SPEC_PORTS]
    for address, port, kind in checks:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def free_offset(avoid: set[int]) -> int:
    for _ in range(200):
        offset = random.randrange(200, 600) * 100
        if offset not in avoid and _ports_free(offset):
            avoid.add(offset)
            return offset
    raise RuntimeError("no free port offset found")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> float:
    """CPU seconds used by the whole machine (all cores) since boot, from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(int, fields[:8])
    except (OSError, ValueError):
        return 0.0
    return (user + nice + system + steal) / CLK_TCK     # interrupt time is not charged to tasks


def other_cpu(machine: float, ours: float, wall: float) -> float:
    """CPU of everything but the server and the load generator, % of one core."""
    return max(machine - ours, 0.0) / wall * 100 if wall > 0 else 0.0


def children_cpu() -> float:
    """CPU seconds of the waited-for child processes (smtp-source)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def proc_status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _can_connect(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect((address, port))
            return True
        except OSError:
            return False


class Server:
    """A process under test whose stdout goes to a file; ready when it prints 'ready'."""

    def __init__(self, name: str, argv: list[str], log: Path, cpu: int | None,
                 cwd: str | None = None) -> None:
        self.name = name
        self.log_path = log
        self.log = open(log, "wb")
        self.t_spawn = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=cwd)
        if cpu is not None:
            try:
                os.sched_setaffinity(self.proc.pid, {cpu})
            except OSError:
                pass
        self.endpoints: list[tuple[str, int]] = []
        self.t_ready_line = self.t_ports = 0.0
        self._wait_ready()

    def output(self) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        deadline = self.t_spawn + STARTUP_TIMEOUT
        while True:
            text = self.output()
            if "ready" in text:
                self.t_ready_line = time.monotonic() - self.t_spawn
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{text[-2000:]}")
            time.sleep(0.002)
        for line in text.splitlines():
            if line.startswith("listening"):
                address, _, port = line.split()[-1].rpartition(":")
                self.endpoints.append((address, int(port)))
        pending = list(self.endpoints)
        while pending:
            pending = [(a, p) for a, p in pending if not _can_connect(a, p)]
            if pending:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name}: endpoints never accepted: {pending}")
                time.sleep(0.002)
        self.t_ports = time.monotonic() - self.t_spawn

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def start_lab(work: Path, tag: str, offsets: set[int], cpu: int | None) -> tuple[Server, Path, int]:
    state = work / f"state-{tag}"
    for attempt in range(5):
        offset = free_offset(offsets)
        try:
            lab = Server("maillab serve",
                         [sys.executable, "-m", "maillab", "serve", "--state", str(state),
                          "--port-offset", str(offset)],
                         work / f"serve-{tag}.log", cpu)
        except RuntimeError as e:
            if "cannot listen" in str(e) and attempt < 4:
                continue      # a port was taken between the check and the bind
            raise
        return lab, state / "mail" / "syr.edu" / "mafudge" / "new", SMTP_PORT + offset
    raise RuntimeError("could not start maillab")


def creation_cost(folder: Path, count: int = 200) -> float:
    """Microseconds to create (and write a byte to) one file in `folder`: about 25 on a rested
    ext4 here, ten to thirty times that for a minute after many deletions (see bench/README.md)."""
    probe = folder / "creation-probe"
    probe.mkdir()
    started = time.perf_counter()
    for i in range(count):
        fd = os.open(probe / str(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"x")
        os.close(fd)
    took = (time.perf_counter() - started) / count * 1e6
    shutil.rmtree(probe)
    return took


def work_folder(prefix: str, parent: Path | None = None) -> Path:
    """A new temporary folder for a run's state, by default beside the default state folder.

    Not /tmp: on some machines /tmp is a tmpfs (no real fsync), on others a
    crowded folder where creating a file costs 1 ms (seen on this project's box).
    """
    parent = parent or default_state_path().parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def maildir_count(new: Path) -> int:
    try:
        with os.scandir(new) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def wait_maildir(new: Path, target: int, timeout: float) -> tuple[float, int]:
    """Poll until `target` files are in `new`; (monotonic time reached, count)."""
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while True:
        n = maildir_count(new)
        now = time.monotonic()
        if n >= target:
            return now, n
        if n != last:
            last, last_change = n, now
        if now > deadline or now - last_change > 30:     # no progress for 30 s: give up
            return now, n
        time.sleep(0.003)


# --------------------------------------------------------------------------
# one measurement
# --------------------------------------------------------------------------
@dataclass
class Result:
    runner: str
    size: int
    sessions: int
    count: int
    delivered: int = 0
    errors: int = 0
    seconds: float = 0.0
    bytes: int = 0
    server_cpu: float = 0.0
    gen_cpu: float = 0.0
    other_cpu: float = 0.0     # CPU of everything else on the machine, % of one core
    p50: float = 0.0
    p99: float = 0.0
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def mbps(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.offsets: set[int] = set()
        self.cpu_server = 0 if args.pin else None
        self.cpu_gen = 1 if args.pin else None
        ctx = multiprocessing.get_context("fork")   # no threads yet: fork is safe and quick
        self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx)
        # start the generator process now, so its start-up is not timed
        self.pool.submit(os.getpid).result()
        self.startups: list[tuple[float, float]] = []
        self.py_spy = shutil.which("py-spy") if args.profile else None
        self.labs = 0

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def run_generator(self, port: int, count: int, size: int, sessions: int) -> dict:
        future = self.pool.submit(generate, "127.0.0.1", port, count, size, sessions, self.cpu_gen)
        return future.result(timeout=MESSAGE_TIMEOUT * (count / sessions + 2))

    def warm_up(self, port: int, size: int) -> int:
        n = self.args.warmup
        if n:
            self.run_generator(port, n, size, min(n, 5))
        return n

    def start_profiler(self, pid: int, name: str) -> subprocess.Popen | None:
        """py-spy attached to the lab (--profile DIR): collapsed stacks, all threads."""
        if not self.args.profile:
            return None
        out = self.args.profile / f"{name}.txt"
        spy = subprocess.Popen([self.py_spy, "record", "-p", str(pid), "-r", "100", "--threads", "--idle",
                                "--format", "raw", "-o", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)   # let it attach
        return spy

    @staticmethod
    def stop_profiler(spy: subprocess.Popen | None) -> None:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(10)

    def new_lab(self) -> tuple[Server, Path, int]:
        self.labs += 1
        lab, new, port = start_lab(self.work, str(self.labs), self.offsets, self.cpu_server)
        self.startups.append((lab.t_ready_line, lab.t_ports))
        return lab, new, port

    # -- maillab, fed by the asyncio generator --------------------------------
    def maildir_run(self, res: Result, port: int, new: Path, server_cpu: Callable[[], float],
                    profile_pid: int | None = None) -> Result:
        """Warm the server up, then time the generator's `res.count` messages from the first
        connect until each is a file in `new` (maillab and Postfix alike)."""
        base = self.warm_up(port, res.size)
        _, base = wait_maildir(new, base, 30)
        spy = (self.start_profiler(profile_pid, f"maillab-{res.size}-x{res.sessions}")
               if profile_pid else None)
        cpu0, all0, w0 = server_cpu(), machine_cpu(), time.monotonic()
        g = self.run_generator(port, res.count, res.size, res.sessions)
        t_done, n = wait_maildir(new, base + g["ok"], 60 + res.count * 0.05)
        cpu1, all1 = server_cpu(), machine_cpu()
        self.stop_profiler(spy)
        res.delivered = n - base
        res.errors = g["errors"]
        res.seconds = t_done - g["t_start"]
        res.bytes = g["bytes"] * res.delivered // max(g["ok"], 1)
        res.server_cpu = (cpu1 - cpu0) / res.seconds * 100 if res.seconds else 0
        res.gen_cpu = g["cpu"] / res.seconds * 100 if res.seconds else 0
        res.other_cpu = other_cpu(all1 - all0, cpu1 - cpu0 + g["cpu"], time.monotonic() - w0)
        res.p50, res.p99 = g["p50"], g["p99"]
        res.extra["accept_seconds"] = g["t_end"] - g["t_start"]
        if g["first_error"]:
            res.note = g["first_error"][:60]
        if res.delivered < g["ok"]:
            res.note = f"only {res.delivered} of {g['ok']} accepted reached the Maildir"
        return res

    def lab_generator(self, size: int, sessions: int, count: int) -> Result:
        lab, new, port = self.new_lab()
        try:
            return self.maildir_run(Result("maillab", size, sessions, count), port, new,
                                    lambda: proc_cpu(lab.pid), lab.pid)
        finally:
            lab.stop()

    # -- the private Postfix, fed by the asyncio generator ---------------------
    def postfix(self, pf: postfix_ref.PostfixInstance, size: int, sessions: int, count: int) -> Result:
        """srvCPU: the CPU of all of Postfix's processes (smtpd, cleanup, qmgr, virtual, ...)."""
        return self.maildir_run(Result("postfix", size, sessions, count), pf.port, pf.new_maildir(),
                                lambda: sum(map(proc_cpu, pf.processes())))

    # -- memory of idle sessions -------------------------------------------------
    def idle_lab(self, n: int) -> dict:
        """VmRSS of `maillab serve` before and while `n` sessions idle past EHLO."""
        lab, new, port = self.new_lab()
        try:
            self.warm_up(port, 1024)
            hold_idle(port, IDLE_BATCH, lambda: None)          # the session code paths, once
            time.sleep(0.3)
            before = proc_status_kb(lab.pid, "VmRSS")
            during = hold_idle(port, n, lambda: proc_status_kb(lab.pid, "VmRSS"))
            return {"sessions": n, "before_kb": before, "during_kb": during,
                    "per_session_kb": (during - before) / n}
        finally:
            lab.stop()

    @staticmethod
    def idle_postfix(pf: postfix_ref.PostfixInstance, n: int) -> dict:
        """Postfix runs one smtpd process per session: their Pss and VmRSS, per process."""
        procs, rss, pss = hold_idle(pf.port, n, pf.smtpd_memory)
        return {"sessions": n, "smtpd": procs, "rss_kb": rss / max(procs, 1), "pss_kb": pss / max(procs, 1)}

    # -- maillab, fed by Postfix's smtp-source ---------------------------------
    def lab_smtp_source(self, size: int, sessions: int, count: int) -> Result:
        res = Result("smtp-source", size, sessions, count)
        lab, new, port = self.new_lab()
        try:
            base = self.warm_up(port, size)
            _, base = wait_maildir(new, base, 30)
            # smtp-source -l counts the body only; it adds ~170 octets of header
            # (From, To, Date, Message-Id) and the lab's own Received line is not counted.
            body = max(size - SMTP_SOURCE_HEADER, 0)
            argv = [SMTP_SOURCE, "-s", str(sessions), "-m", str(count), "-l", str(body),
                    "-f", SENDER, "-t", RECIPIENT, "-M", "bench.northpole.org",
                    f"127.0.0.1:{port}"]
            cpu0, gen0, all0 = proc_cpu(lab.pid), children_cpu(), machine_cpu()
            t0 = time.monotonic()
            src = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
            if self.cpu_gen is not None:
                try:
                    os.sched_setaffinity(src.pid, {self.cpu_gen})
                except OSError:
                    pass
            try:
                out, _ = src.communicate(timeout=MESSAGE_TIMEOUT * (count / sessions + 2))
            except subprocess.TimeoutExpired:
                src.kill()
                out, _ = src.communicate()
            t_sent = time.monotonic()
            # when smtp-source failed, what it did send is already in or nearly
            t_done, n = wait_maildir(new, base + count, 60 + count * 0.05 if src.returncode == 0 else 3)
            cpu1, all1 = proc_cpu(lab.pid), machine_cpu()
            res.delivered = n - base
            res.errors = 0 if src.returncode == 0 else 1
            res.seconds = t_done - t0
            res.bytes = res.delivered * size
            res.server_cpu = (cpu1 - cpu0) / res.seconds * 100 if res.seconds else 0
            gen_secs = children_cpu() - gen0
            res.gen_cpu = gen_secs / res.seconds * 100 if res.seconds else 0
            res.other_cpu = other_cpu(all1 - all0, cpu1 - cpu0 + gen_secs, time.monotonic() - t0)
            res.extra["accept_seconds"] = t_sent - t0
            text = out.decode("utf-8", "replace").strip()
            if src.returncode != 0:
                res.note = (text.splitlines() or [f"exit {src.returncode}"])[-1][:60]
            elif res.delivered < count:
                res.note = f"only {res.delivered} of {count} reached the Maildir"
        finally:
            lab.stop()
        return res

    # -- bare aiosmtpd, fed by the asyncio generator ---------------------------
    def bare(self, server: Server, port: int, size: int, sessions: int, count: int) -> Result:
        res = Result("bare aiosmtpd", size, sessions, count)
        self.warm_up(port, size)
        cpu0, all0, w0 = proc_cpu(server.pid), machine_cpu(), time.monotonic()
        g = self.run_generator(port, count, size, sessions)
        cpu1, all1 = proc_cpu(server.pid), machine_cpu()
        res.other_cpu = other_cpu(all1 - all0, cpu1 - cpu0 + g["cpu"], time.monotonic() - w0)
        res.delivered = g["ok"]
        res.errors = g["errors"]
        res.seconds = g["t_end"] - g["t_start"]
        res.bytes = g["bytes"]
        res.server_cpu = (cpu1 - cpu0) / res.seconds * 100 if res.seconds else 0
        res.gen_cpu = g["cpu"] / res.seconds * 100 if res.seconds else 0
        res.p50, res.p99 = g["p50"], g["p99"]
        res.note = g["first_error"][:60]
        return res

    # -- RSS after many messages -----------------------------------------------
    def rss(self, messages: int) -> dict:
        lab, new, port = self.new_lab()
        try:
            rss0 = proc_status_kb(lab.pid, "VmRSS")
            g = self.run_generator(port, messages, 1024, 10)
            t_done, n = wait_maildir(new, g["ok"], 60 + messages * 0.05)
            time.sleep(0.2)     # let the maillog writer catch up
            return {"messages": messages, "delivered": n, "errors": g["errors"],
                    "seconds": t_done - g["t_start"], "rss_start_kb": rss0,
                    "rss_end_kb": proc_status_kb(lab.pid, "VmRSS"),
                    "hwm_kb": proc_status_kb(lab.pid, "VmHWM")}
        finally:
            lab.stop()


# Header octets smtp-source adds before its -l body (measured in probe_smtp_source).
SMTP_SOURCE_HEADER = 0


def probe_smtp_source(work: Path) -> int:
    """Octets of header smtp-source puts before its -l body: catch one message."""
    got: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 probe ESMTP\r\n")
        in_data = False
        data = b""
        while True:
            line = await reader.readline()
            if not line:
                break
            if in_data:
                if line == b".\r\n":
                    got.append(len(data))
                    in_data = False
                    writer.write(b"250 ok\r\n")
                else:
                    data += line
                continue
            cmd = line[:4].upper()
            if cmd == b"DATA":
                in_data = True
                writer.write(b"354 go\r\n")
            elif cmd == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            SMTP_SOURCE, "-m", "1", "-l", "1000", "-f", SENDER, "-t", RECIPIENT,
            "-M", "bench.northpole.org", f"127.0.0.1:{port}",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        async with asyncio.timeout(10):
            await proc.wait()
        server.close()

    asyncio.run(main())
    return max(got[0] - 1000, 0) if got else 0


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def by_row(results: list[Result], runner: str) -> dict[tuple[int, int], Result]:
    return {(r.size, r.sessions): r for r in results if r.runner == runner}


def ratio(r: Result, ref: Result | None) -> float | None:
    return r.rate / ref.rate if ref and ref.rate and r is not ref else None


def print_table(results: list[Result]) -> None:
    bare, postfix = by_row(results, "bare aiosmtpd"), by_row(results, "postfix")
    head = (f"{'size':>6} {'sess':>4}  {'runner':<13} {'msgs':>6} {'err':>4} {'seconds':>8} "
            f"{'250s at':>7} {'msg/s':>8} {'MB/s':>7} {'vs pfx':>7} {'vs bare':>7} {'srvCPU':>6} "
            f"{'genCPU':>6} {'other':>5} {'p50 ms':>7} {'p99 ms':>7}  note")
    print(head)
    print("-" * len(head))
    last = None
    for r in results:
        if last is not None and (r.size, r.sessions) != last:
            print()
        last = (r.size, r.sessions)
        cols = [ratio(r, ref.get(last)) for ref in (postfix, bare)]
        rel = " ".join(f"{v:6.2f}x" if v is not None else f"{'':>7}" for v in cols)
        gen = f"{r.gen_cpu:5.0f}%"
        lat = (f"{r.p50 * 1000:7.1f} {r.p99 * 1000:7.1f}" if r.runner != "smtp-source"
               else f"{'--':>7} {'--':>7}")
        print(f"{size_label(r.size):>6} {r.sessions:>4}  {r.runner:<13} {r.delivered:>6} {r.errors:>4} "
              f"{r.seconds:8.2f} {r.extra.get('accept_seconds', r.seconds):7.2f} {r.rate:8.1f} "
              f"{r.mbps:7.2f} {rel} {r.server_cpu:5.0f}% {gen:>6} {r.other_cpu:4.0f}% "
              f"{lat}  {r.note}")


def verdict(value: float | None, target: float | None) -> str:
    if value is None:
        return "   --  "
    text = f"{value:5.2f}x"
    return f"{text} (target >= {target}x: {'meets' if value >= target else 'BELOW'})" if target else text


def print_summary(results: list[Result], bench: Bench, rss: dict | None, postfix_note: str) -> None:
    print()
    bare, postfix = by_row(results, "bare aiosmtpd"), by_row(results, "postfix")
    print("maillab (asyncio generator) beside Postfix and bare aiosmtpd, all measured in this run"
          + (f" ({postfix_note})" if postfix_note else "") + ":")
    for r in results:
        if r.runner != "maillab":
            continue
        key = (r.size, r.sessions)
        p, b = postfix.get(key), bare.get(key)
        print(f"  {size_label(r.size):>6} x{r.sessions:<3} maillab {r.rate:7.1f} msg/s | "
              f"Postfix {f'{p.rate:7.1f}' if p else '     --'} | bare {f'{b.rate:7.1f}' if b else '     --'} | "
              f"/Postfix {verdict(ratio(r, p), POSTFIX_TARGET.get(r.size))} | "
              f"/bare {verdict(ratio(r, b), BARE_TARGET)}")
    if bench.startups:
        ready = [s[0] for s in bench.startups]
        ports = [s[1] for s in bench.startups]
        print(f"Start-up of `maillab serve` until every printed endpoint accepts ({len(ports)} starts): "
              f"median {statistics.median(ports):.3f} s, min {min(ports):.3f} s, max {max(ports):.3f} s "
              f"('ready' line: median {statistics.median(ready):.3f} s); target < {STARTUP_TARGET:.0f} s: "
              f"{'meets' if statistics.median(ports) < STARTUP_TARGET else 'BELOW'}")
    if rss:
        end_mb = rss["rss_end_kb"] / 1024
        print(f"RSS of the lab after {rss['delivered']} of {rss['messages']} messages (1 KB, 10 sessions, "
              f"{rss['seconds']:.1f} s, {rss['delivered'] / rss['seconds']:.1f} msg/s, "
              f"{rss['errors']} errors): "
              f"{end_mb:.1f} MB (at start {rss['rss_start_kb'] / 1024:.1f} MB, peak "
              f"{rss['hwm_kb'] / 1024:.1f} MB); target < {RSS_TARGET_MB:.0f} MB: "
              f"{'meets' if end_mb < RSS_TARGET_MB else 'BELOW'}")


def print_idle(lab: dict | None, pf: dict | None, postfix_note: str) -> None:
    if lab:
        print(f"Idle SMTP sessions (each past EHLO): maillab {lab['per_session_kb']:.1f} KiB per session "
              f"(VmRSS {lab['before_kb'] / 1024:.1f} MB -> {lab['during_kb'] / 1024:.1f} MB with "
              f"{lab['sessions']} sessions)")
    if pf:
        print(f"  Postfix {pf['pss_kb']:.0f} KiB per session (Pss of one smtpd process, mean of "
              f"{pf['smtpd']} for {pf['sessions']} sessions; VmRSS {pf['rss_kb']:.0f} KiB, which counts "
              f"the shared libraries in every process)")
    elif lab:
        print(f"  Postfix: not measured ({postfix_note or 'not run'})")


def default_count(size: int, sessions: int, quick: bool) -> int:
    if quick:
        return 200 if size <= 16 * 1024 else 100
    base = 1500 if size <= 16 * 1024 else 1000
    return base if sessions > 1 else base // 3


def main(argv: list[str] | None = None) -> int:
    if (argv if argv is not None else sys.argv[1:])[:1] == ["_bare"]:
        return bare_server_main()
    p = argparse.ArgumentParser(description="SMTP ingest benchmark of maillab (smtp1.syr.edu -> Maildir).")
    p.add_argument("--quick", action="store_true", help="small counts: the whole run takes < 1 minute")
    p.add_argument("--count", type=int, metavar="N",
                   help="messages per configuration (default: a few seconds' worth per configuration)")
    p.add_argument("--sizes", type=size_list, default=[1024, 102400], metavar="S,S",
                   help="message sizes, e.g. 1K,100K (default)")
    p.add_argument("--concurrency", type=int_list, default=None, metavar="N,N",
                   help="concurrent sessions, e.g. 1,10,50 (default; 10 with --quick)")
    p.add_argument("--rss-messages", type=int, default=None, metavar="N",
                   help="messages before reading the lab's RSS (default 10000; 1000 with --quick; 0 skips)")
    p.add_argument("--warmup", type=int, default=10, metavar="N",
                   help="untimed messages sent to each server before a measurement (default 10)")
    p.add_argument("--runners", default="bare,maillab,postfix,smtp-source", metavar="R,R",
                   help="which runs: bare, maillab, postfix, smtp-source (default: all)")
    p.add_argument("--idle-sessions", type=int, default=None, metavar="N",
                   help="idle SMTP sessions held open to measure memory per session "
                        "(default 500; 200 with --quick; 0 skips)")
    p.add_argument("--pin", action="store_true",
                   help="pin servers to CPU 0 and load generators to CPU 1")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, state)")
    p.add_argument("--work", type=Path, metavar="DIR",
                   help="where the temporary folder goes (default: beside the default state folder, "
                        "on the file system a real lab writes to)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="attach py-spy to each maillab run (generator runs only) and write its "
                        "collapsed stacks to DIR/maillab-SIZE-xN.txt (slows the lab down)")
    args = p.parse_args(argv)
    if args.count is not None and not 1 <= args.count <= 1_000_000:
        p.error("--count must be between 1 and 1000000")
    if args.rss_messages is None:
        args.rss_messages = 1000 if args.quick else 10000
    if args.concurrency is None:
        args.concurrency = [10] if args.quick else [1, 10, 50]
    if args.idle_sessions is None:
        args.idle_sessions = 200 if args.quick else 500
    if not 0 <= args.idle_sessions <= 5000:
        p.error("--idle-sessions must be between 0 and 5000")
    runners = {r.strip() for r in args.runners.split(",") if r.strip()}
    if not runners <= {"bare", "maillab", "postfix", "smtp-source"}:
        p.error("--runners: choose from bare, maillab, postfix, smtp-source")
    postfix_note = "" if "postfix" in runners else "not run (--runners)"
    if not postfix_note and (why := postfix_ref.unavailable()):
        postfix_note = f"Postfix not measured: {why}"
    if args.pin and (os.cpu_count() or 1) < 2:
        p.error("--pin needs 2 CPUs")
    use_source = "smtp-source" in runners and Path(SMTP_SOURCE).exists()
    if args.profile:
        if not shutil.which("py-spy"):
            p.error("--profile needs py-spy (python3 -m pip install py-spy)")
        args.profile.mkdir(parents=True, exist_ok=True)

    global SMTP_SOURCE_HEADER
    work = work_folder("maillab-bench-", args.work)
    t_begin = time.monotonic()
    spec = importlib.util.find_spec("maillab")
    origin = Path(spec.origin).parent if spec and spec.origin else "?"
    print(f"maillab ingest benchmark: maillab from {origin}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.2f}), "
          f"sizes {', '.join(map(size_label, args.sizes))}, sessions {args.concurrency}, "
          f"one connection per message, work folder {work}", flush=True)
    creation = creation_cost(work)
    print(f"creating a file in the work folder: {creation:.0f} µs"
          + (" -- slow: many files were deleted on this disk lately, figures will be low "
             "(see bench/README.md)" if creation > 150 else ""), flush=True)
    if "smtp-source" in runners and not use_source:
        print(f"({SMTP_SOURCE} not found: the smtp-source runs are skipped)")
    if postfix_note:
        print(f"({postfix_note}: no Postfix ratio is printed)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))     # run the finally below: stop Postfix
    bench = Bench(args, work)
    results: list[Result] = []
    bare_server: Server | None = None
    pf: postfix_ref.PostfixInstance | None = None
    rss = idle_lab = idle_pf = None
    try:
        if not postfix_note:
            parent = postfix_ref.instance_parent(work)
            pf = postfix_ref.PostfixInstance(parent, RECIPIENT, smtpd_limit=max(100, args.idle_sessions + 20))
            pf.start()
            print(f"Postfix {postfix_ref.version()}: private instance in {pf.dir}, 127.0.0.1:{pf.port}"
                  + ("" if parent == work else
                     f" (not in the work folder: an unprivileged uid cannot reach it; creating a file "
                     f"there: {creation_cost(pf.dir):.0f} µs, same file system: "
                     f"{'yes' if os.stat(parent).st_dev == os.stat(work).st_dev else 'NO'})"), flush=True)
        if use_source:
            SMTP_SOURCE_HEADER = probe_smtp_source(work)
        if "bare" in runners:
            bare_server = Server("bare aiosmtpd", [sys.executable, os.path.abspath(__file__), "_bare"],
                                 work / "bare.log", bench.cpu_server)
            bare_port = bare_server.endpoints[0][1]
        for size in args.sizes:
            for sessions in args.concurrency:
                count = args.count or default_count(size, sessions, args.quick)
                runs = []
                if bare_server is not None:
                    runs.append(lambda: bench.bare(bare_server, bare_port, size, sessions, count))
                if "maillab" in runners:
                    runs.append(lambda: bench.lab_generator(size, sessions, count))
                if pf is not None:
                    runs.append(lambda: bench.postfix(pf, size, sessions, count))
                if use_source:
                    runs.append(lambda: bench.lab_smtp_source(size, sessions, count))
                for run in runs:
                    r = run()
                    results.append(r)
                    print(f"  {size_label(size):>6} x{sessions:<3} {r.runner:<13} {r.delivered:>6} msgs "
                          f"{r.seconds:7.2f} s {r.rate:8.1f} msg/s {r.mbps:6.2f} MB/s "
                          f"server CPU {r.server_cpu:3.0f}%  {r.note}", flush=True)
        if args.rss_messages > 0:
            print(f"  RSS run: {args.rss_messages} messages of 1 KB, 10 sessions ...", flush=True)
            rss = bench.rss(args.rss_messages)
        if args.idle_sessions:
            print(f"  idle run: {args.idle_sessions} SMTP sessions past EHLO ...", flush=True)
            if "maillab" in runners:
                idle_lab = bench.idle_lab(args.idle_sessions)
            if pf is not None:
                idle_pf = bench.idle_postfix(pf, args.idle_sessions)
    finally:
        if bare_server is not None:
            bare_server.stop()
        if pf is not None:
            pf.stop()
            if not args.keep:
                pf.remove()
        bench.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(results)
    print_summary(results, bench, rss, postfix_note)
    print_idle(idle_lab, idle_pf, postfix_note)
    if pf is not None:
        print("postfix: private Postfix to a Maildir (virtual delivery); srvCPU is all of its processes'.")
    if use_source:
        print(f"smtp-source: -l SIZE-{SMTP_SOURCE_HEADER} (it adds a {SMTP_SOURCE_HEADER}-octet header), "
              f"one message per session (no -d); genCPU is its CPU; its latency is not measured.")
    if args.profile:
        print(f"py-spy profiles of the maillab runs (figures above are slowed by it): {args.profile}")
    print("seconds: first connect until the last message is in the Maildir (bare: until the last QUIT); "
          "250s at: when the last message was acknowledged.")
    print(f"other: CPU of everything else on the machine during the run (this script's polling, other "
          f"users), % of one core; when high, the figures are skewed. Load average at the end: "
          f"{os.getloadavg()[0]:.2f}.")
    print(f"srvCPU: CPU of the server process (all threads) over the timed run, 100% = one core. "
          f"MB/s: 10^6 octets of message per second. Total time {time.monotonic() - t_begin:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
