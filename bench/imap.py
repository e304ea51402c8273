#!/usr/bin/env python3
"""IMAP and POP3 read benchmark: a 10,000-message mailbox, cold and warm, beside Dovecot when installed.

It generates a mailbox for mafudge@syr.edu (Maildir files in cur/, realistic
headers, a fifth of them multipart, about 3 KB each, some \\Seen) in a fresh
state folder, starts `maillab serve` on free ports, and runs one client script
with a raw-socket IMAP client (so the client's own parsing costs nothing):

    SELECT INBOX
    UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)
    FETCH 1:* BODY.PEEK[HEADER]
    SEARCH SUBJECT invoice
    FETCH <100 messages spread over the mailbox> BODY.PEEK[]

first on the never-opened mailbox ("cold": the index is built, every header
read from disk), then again in the same server ("warm").  Then:

    POP3 STAT       USER, PASS and STAT, timed from PASS to the STAT reply
                    (warm; and "cold" in a restarted lab: index on disk, nothing in memory)
    SELECT after a restart   the same for IMAP's SELECT
    delivery→IDLE   a client IDLEs on INBOX while messages are sent over SMTP,
                    one at a time: time from the 250 reply to DATA until the
                    client reads "* n EXISTS"; median and p90 over --latency-count

With `dovecot` on the PATH, the same script runs against a Dovecot started
from a generated config on a copy of the same Maildir (its delivery latency is
measured from a file renamed into new/ to EXISTS, as no Postfix is involved),
and the table gains Dovecot columns and maillab/Dovecot ratios.  Otherwise the
ratios are to the Dovecot 2.3 figures quoted in issue 4 (same machine).

Write and concurrency (issue 13), with --write: single-client APPEND of
--append-count 2 KB messages (synchronizing literals, one command at a time;
APPEND/s; then again with the literal and its closing CRLF in two writes and
Nagle's algorithm on, as most clients write: the delayed-ACK stall of issue 15), then --sessions concurrent sessions on a 1,000-message mailbox each
doing a FETCH / SEARCH / STORE mix; every command's median and p95 latency,
for maillab and for Dovecot side by side, and the ratios; and maillab's CPU
time (all threads of `maillab serve`) per command of the mix, which the
box's load moves less than the latencies.

    python3 bench/imap.py                 # 10,000 messages, about a minute
    python3 bench/imap.py --write         # APPEND/s and 10 concurrent sessions only
    python3 bench/imap.py --messages 1000 --latency-count 20
"""

from __future__ import annotations

import os
import sys

# Run as `python3 bench/imap.py`, bench/ is sys.path[0]: bench/queue.py would shadow the queue module.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))          # the project, when not installed

import argparse  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

from maillab.lab.world import default_world_path  # noqa: E402
from maillab.store.maildir import crlf_size, filename  # noqa: E402

USER = "mafudge@syr.edu"
PASSWORD = "maillab"
HOST = "127.0.0.1"                  # smtp1.syr.edu
SEARCH_WORD = "invoice"
TIMEOUT = 120.0

# Dovecot 2.3 on this machine, from issue 4 (ms): warm, cold
DOVECOT_REF = {"SELECT": (16, 340), "UID FETCH ENVELOPE": (340, 1900), "FETCH BODY.PEEK[HEADER]": (306, None),
               "SEARCH SUBJECT": (50, None), "FETCH 100 bodies": (10, None), "POP3 STAT": (32, 1400),
               "delivery→IDLE EXISTS (median)": (503, None)}
TARGETS = {"SELECT": 16, "UID FETCH ENVELOPE": 340, "FETCH BODY.PEEK[HEADER]": 306, "SEARCH SUBJECT": 50,
           "FETCH 100 bodies": 10, "POP3 STAT": 32, "delivery→IDLE EXISTS (median)": 20}
COLD_OPEN_TARGET = 1000.0

FIRST = ["Santa", "Bob", "Ron", "Tim", "Alice", "Grace", "Linus", "Ada", "Ken", "Barbara", "Radia", "Vint"]
LAST = ["Claus", "Elstad", "Jorgensen", "Hopper", "Torvalds", "Lovelace", "Thompson", "Liskov", "Perlman", "Cerf"]
DOMAINS = ["northpole.org", "gmail.com", "luxsci.net", "syr.edu", "example.com"]
WORDS = ("meeting agenda lunch project report draft review budget schedule deadline update notes question "
         "reminder party lab homework exam grade server mailbox protocol packet router header body").split()


# ---- the mailbox -----------------------------------------------------------------------------

def message(rng: random.Random, i: int) -> bytes:
    """One message in stored form (LF), about 3 KB."""
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    sender = f"{name.split()[0].lower()}.{name.split()[1].lower()}@{rng.choice(DOMAINS)}"
    words = rng.sample(WORDS, 4)
    if rng.random() < 0.01:
        words.insert(1, SEARCH_WORD)
    subject = " ".join(words).capitalize()
    day = 1 + i % 28
    head = (f"Return-Path: <{sender}>\nDelivered-To: {USER}\n"
            f"Received: from mail.{sender.split('@')[1]} (mail [127.0.0.3])\n\tby smtp1.syr.edu (maillab) with ESMTP "
            f"id Q{i:011d}\n\tfor <{USER}>; Mon, {day} Dec 2025 10:{i % 60:02d}:00 +0000\n"
            f"From: \"{name}\" <{sender}>\nTo: Michael Fudge <{USER}>\nSubject: {subject}\n"
            f"Date: Mon, {day} Dec 2025 10:{i % 60:02d}:00 +0000\nMessage-ID: <bench.{i}@{sender.split('@')[1]}>\n"
            f"MIME-Version: 1.0\n")
    lines = "".join(" ".join(rng.choices(WORDS, k=12)) + "\n" for _ in range(rng.randint(20, 40)))
    if i % 5:
        return (head + "Content-Type: text/plain; charset=utf-8\n\n" + lines).encode()
    return (head + "Content-Type: multipart/alternative; boundary=\"b{0}\"\n\n--b{0}\n"
            "Content-Type: text/plain; charset=utf-8\n\n{1}--b{0}\nContent-Type: text/html; charset=utf-8\n\n"
            "<html><body><pre>{1}</pre></body></html>\n--b{0}--\n").format(i, lines).encode()


def generate(maildir: Path, count: int) -> int:
    """Write `count` messages into maildir/cur (as an MDA and a reader would have left them)."""
    rng = random.Random(4)
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    total = 0
    start = int(time.time()) - count * 60
    for i in range(count):
        data = message(rng, i)
        letters = "S" if rng.random() < 0.7 else ""
        name = filename(f"{start + i * 60}.M{i}P1.bench", len(data), crlf_size(data), letters)
        path = maildir / "cur" / name
        path.write_bytes(data)
        os.utime(path, (start + i * 60, start + i * 60))
        total += len(data)
    return total


# ---- clients ---------------------------------------------------------------------------------

class Imap:
    """A raw-socket IMAP client: sends a command, reads until its tagged response."""

    def __init__(self, port: int, host: str = HOST) -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buf = bytearray()
        self.n = 0
        self.read_until(b"\r\n")

    def read_until(self, marker: bytes) -> bytes:
        start = 0
        while True:
            i = self.buf.find(marker, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(marker)])
                del self.buf[:i + len(marker)]
                return out
            start = max(0, len(self.buf) - len(marker))
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk

    def read_tagged(self, tag: bytes) -> bytes:
        """Everything before the line that starts with `tag` (that line stays in the buffer)."""
        marker = b"\r\n" + tag
        start = 0
        while True:
            if self.buf.startswith(tag):
                return b""
            i = self.buf.find(marker, start)
            if i >= 0:
                out = bytes(self.buf[:i + 2])
                del self.buf[:i + 2]
                return out
            start = max(0, len(self.buf) - len(marker))
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk

    def command(self, text: str) -> tuple[float, bytes]:
        """(milliseconds to the tagged response, the whole response)."""
        self.n += 1
        tag = f"BENCH{self.n:04d}"
        started = time.perf_counter()
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        data = self.read_tagged(f"{tag} ".encode())
        line = self.read_until(b"\r\n")
        elapsed = (time.perf_counter() - started) * 1000
        if not line.startswith(f"{tag} OK".encode()):
            raise RuntimeError(f"{text[:40]}: {line[:120]!r}")
        return elapsed, data + line

    def close(self) -> None:
        try:
            self.sock.sendall(b"Z LOGOUT\r\n")
        except OSError:
            pass
        self.sock.close()


def pop3_stat(port: int) -> float:
    """Milliseconds from sending PASS to the STAT reply."""
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(f"USER {USER}\r\n".encode())
        f.readline()
        started = time.perf_counter()
        s.sendall(f"PASS {PASSWORD}\r\nSTAT\r\n".encode())
        assert f.readline().startswith(b"+OK")
        stat = f.readline()
        elapsed = (time.perf_counter() - started) * 1000
        assert stat.startswith(b"+OK"), stat
        s.sendall(b"QUIT\r\n")
        f.readline()
        return elapsed


def script(port: int, count: int) -> dict[str, float]:
    """The client script of the issue; milliseconds per step."""
    c = Imap(port)
    c.command(f"LOGIN {USER} {PASSWORD}")
    out: dict[str, float] = {}
    out["SELECT"], data = c.command("SELECT INBOX")
    assert f"* {count} EXISTS".encode() in data, data[:300]
    out["UID FETCH ENVELOPE"], data = c.command("UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)")
    assert data.count(b" FETCH (") == count
    out["FETCH BODY.PEEK[HEADER]"], data = c.command("FETCH 1:* BODY.PEEK[HEADER]")
    assert data.count(b" FETCH (") == count
    out["SEARCH SUBJECT"], data = c.command(f"SEARCH SUBJECT {SEARCH_WORD}")
    assert data.startswith(b"* SEARCH ") and len(data.split(b"\r\n")[0].split()) > 2
    step = max(count // 100, 1)
    numbers = ",".join(str(1 + i * step) for i in range(min(100, count)))
    out["FETCH 100 bodies"], data = c.command(f"FETCH {numbers} BODY.PEEK[]")
    assert data.count(b" FETCH (") == min(100, count)
    c.close()
    return out


def smtp_send(sock: socket.socket, f, data: bytes) -> None:
    """One transaction on an open SMTP connection; returns when the 250 to DATA is read."""
    for line, want in ((b"MAIL FROM:<santa@northpole.org>\r\n", b"250"), (f"RCPT TO:<{USER}>\r\n".encode(), b"250"),
                       (b"DATA\r\n", b"354")):
        sock.sendall(line)
        reply = f.readline()
        assert reply.startswith(want), reply
    sock.sendall(data + b".\r\n")
    reply = f.readline()
    assert reply.startswith(b"250"), reply


def idle_latency(imap_port: int, deliver, count: int) -> list[float]:
    """Milliseconds from each delivery (`deliver(i)` returns when it is done) to "* n EXISTS" in IDLE."""
    c = Imap(imap_port)
    c.command(f"LOGIN {USER} {PASSWORD}")
    c.command("SELECT INBOX")
    c.sock.sendall(b"I IDLE\r\n")
    c.read_until(b"+ idling\r\n")
    out = []
    for i in range(count):
        deliver(i)
        started = time.perf_counter()
        c.read_until(b" EXISTS\r\n")
        out.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    c.sock.sendall(b"DONE\r\n")
    c.read_until(b"I OK")
    c.close()
    return out


def smtp_deliverer(port: int):
    sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"EHLO bench.northpole.org\r\n")
    while not f.readline().startswith(b"250 "):
        pass

    def deliver(i: int) -> None:
        smtp_send(sock, f, f"From: santa@northpole.org\r\nTo: {USER}\r\nSubject: latency {i}\r\n\r\nping\r\n".encode())
    return deliver, sock


# ---- servers ---------------------------------------------------------------------------------

def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_offset() -> int:
    rng = random.Random()
    for _ in range(200):
        offset = rng.randrange(100, 600) * 100
        if all(port_free(p + offset) for p in (1053, 2525, 2587, 1143, 1110)):
            return offset
    raise RuntimeError("no free port offset")


def plaintext_world(folder: Path) -> Path:
    """The default world with logins allowed before TLS (as the Dovecot below: ssl = no): a copy in `folder`."""
    if not folder.exists():
        shutil.copytree(default_world_path(), folder)
        toml = folder / "lab.toml"
        toml.write_text(toml.read_text().replace("auth_over_plaintext = false", "auth_over_plaintext = true"))
    return folder


@dataclass
class Lab:
    state: Path
    offset: int = field(default_factory=free_offset)
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.state.parent / f"serve-{self.offset}.log", "ab")
        world = plaintext_world(self.state.parent / "world")
        self.proc = subprocess.Popen([sys.executable, "-m", "maillab", "serve", "--state", str(self.state),
                                      "--world", str(world), "--port-offset", str(self.offset)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=os.path.dirname(_HERE))
        deadline = time.monotonic() + 30
        while not (b"ready" in Path(log.name).read_bytes() and not port_free(1143 + self.offset)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"maillab serve did not start:\n{Path(log.name).read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)

    @property
    def imap(self) -> int:
        return 1143 + self.offset

    @property
    def pop3(self) -> int:
        return 1110 + self.offset

    @property
    def smtp(self) -> int:
        return 2525 + self.offset


DOVECOT_CONF = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
listen = {host}
protocols = {protocols}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{mail}/%n
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_uid = {user}
mail_gid = {group}
first_valid_uid = 0
service anvil {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {base}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={mail}/%n
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{pop3_service}"""
DOVECOT_POP3_SERVICE = """\
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""
DOVECOT_POP3 = Path("/usr/lib/dovecot/pop3")     # Debian's dovecot-pop3d; without it, IMAP only


@dataclass
class Dovecot:
    base: Path
    mail: Path
    imap: int = 0
    pop3: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        import grp
        import pwd
        offset = free_offset()
        self.imap, self.pop3 = 1143 + offset, (1110 + offset if DOVECOT_POP3.exists() else 0)
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name

        def system_user(name: str) -> str:       # Dovecot will not run its login processes as root
            try:
                return pwd.getpwnam(name).pw_name
            except KeyError:
                return "nobody"
        login_user = system_user("dovenull") if os.getuid() == 0 else user
        if os.getuid() == 0:            # nor mail processes (userdb returning uid 0 is refused)
            mail_user = pwd.getpwnam(system_user("nobody"))
            user, group = mail_user.pw_name, grp.getgrgid(mail_user.pw_gid).gr_name
            for root, dirs, files in os.walk(self.mail):
                for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                    os.chown(name, mail_user.pw_uid, mail_user.pw_gid)
        internal_user = system_user("dovecot") if os.getuid() == 0 else user
        for sub in ("run", "state"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "passwd").write_text(f"mafudge:{{PLAIN}}{PASSWORD}\n")
        # the auth process runs as Dovecot's internal user: it must reach the passwd file
        for folder in (self.base.parent, self.base):
            os.chmod(folder, os.stat(folder).st_mode | 0o711)
        os.chmod(self.base / "passwd", 0o644)
        conf = self.base / "dovecot.conf"
        conf.write_text(DOVECOT_CONF.format(base=self.base, host=HOST, mail=self.mail, user=user, group=group,
                                            login_user=login_user, internal_user=internal_user,
                                            imap=self.imap, protocols="imap pop3" if self.pop3 else "imap",
                                            pop3_service=DOVECOT_POP3_SERVICE.format(pop3=self.pop3)
                                            if self.pop3 else ""))
        self.proc = subprocess.Popen([shutil.which("dovecot") or "dovecot", "-F", "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while port_free(self.imap) or (self.pop3 and port_free(self.pop3)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dovecot did not start (see " + str(self.base / "dovecot.log") + ")")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)


def dovecot_deliverer(maildir: Path):
    def deliver(i: int) -> None:
        data = f"From: santa@northpole.org\nTo: {USER}\nSubject: latency {i}\n\nping\n".encode()
        tmp = maildir / "tmp" / f"{time.time():.6f}.lat{i}"
        tmp.write_bytes(data)
        os.rename(tmp, maildir / "new" / tmp.name)
    return deliver


# ---- writes and concurrent sessions (issue 13) -----------------------------------------------

APPEND_SIZE = 2048
MIX_MESSAGES = 1000
MIX_COMMANDS = ("FETCH", "SEARCH", "STORE")


def append_message(i: int) -> bytes:
    """A 2 KB message (CRLF) for APPEND, distinct by number."""
    head = (f"From: Santa <santa@northpole.org>\r\nTo: {USER}\r\nSubject: append {i}\r\n"
            f"Message-ID: <append.{i}@northpole.org>\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqrstu\r\n"
    body = line * ((APPEND_SIZE - len(head)) // len(line))
    return head + body + b"x" * (APPEND_SIZE - len(head) - len(body) - 2) + b"\r\n"


def append_rate(port: int, count: int, pieces: bool = False) -> float:
    """APPENDs per second, one client, one APPEND at a time (synchronizing literal); with
    `pieces`, the literal and the closing CRLF go in two writes (Nagle's algorithm on, as in
    most clients: the CRLF waits for the server's ACK of the literal; issue 15's 40 ms stall)."""
    c = Imap(port)
    c.command(f"LOGIN {USER} {PASSWORD}")
    box = "BenchPieces" if pieces else "Bench"
    c.command(f"CREATE {box}")
    started = time.perf_counter()
    for i in range(count):
        data = append_message(i)
        c.n += 1
        tag = f"BENCH{c.n:04d}"
        c.sock.sendall(f"{tag} APPEND {box} {{{len(data)}}}\r\n".encode())
        c.read_until(b"\r\n")                   # the "+ " continuation
        if pieces:
            c.sock.sendall(data)
            c.sock.sendall(b"\r\n")
        else:
            c.sock.sendall(data + b"\r\n")
        c.read_tagged(f"{tag} ".encode())
        line = c.read_until(b"\r\n")
        if not line.startswith(f"{tag} OK".encode()):
            raise RuntimeError(f"APPEND: {line[:120]!r}")
    elapsed = time.perf_counter() - started
    _, data = c.command(f"STATUS {box} (MESSAGES)")
    if f"MESSAGES {count})".encode() not in data:
        raise RuntimeError(f"APPEND: {count} appended, STATUS says {data[:200]!r}")
    c.close()
    return count / elapsed


def mix_session(port: int, seed: int, rounds: int, count: int, out: dict[str, list[float]],
                errors: list[str], ready, go) -> None:
    """One long session: SELECT, then `rounds` x (FETCH of 10 headers, SEARCH, STORE of a flag)."""
    rng = random.Random(seed)
    try:
        c = Imap(port)
        c.command(f"LOGIN {USER} {PASSWORD}")
        c.command("SELECT INBOX")
        ready.release()
        go.wait()
        for _ in range(rounds):
            first = rng.randint(1, count - 9)
            ms, data = c.command(f"FETCH {first}:{first + 9} (FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
            assert data.count(b" FETCH (") >= 10, data[:200]
            out["FETCH"].append(ms)
            ms, data = c.command(f"SEARCH {rng.choice(('UNSEEN', 'FLAGGED', 'SUBJECT ' + SEARCH_WORD))}")
            assert b"* SEARCH" in data, data[:200]
            out["SEARCH"].append(ms)
            n = rng.randint(1, count)
            ms, _ = c.command(f"STORE {n} {rng.choice('+-')}FLAGS (\\Flagged)")
            out["STORE"].append(ms)
        c.close()
    except Exception as e:  # noqa: BLE001 -- reported by the caller
        errors.append(f"{type(e).__name__}: {e}")
        ready.release()


def concurrent_latency(port: int, sessions: int, rounds: int, count: int) -> dict[str, tuple[float, float, float]]:
    """(median, p95, mean) milliseconds of each command of the mix with `sessions` concurrent sessions."""
    import threading
    out: dict[str, list[float]] = {k: [] for k in MIX_COMMANDS}
    errors: list[str] = []
    ready, go = threading.Semaphore(0), threading.Event()
    threads = [threading.Thread(target=mix_session, args=(port, i, rounds, count, out, errors, ready, go))
               for i in range(sessions)]
    for t in threads:
        t.start()
    for _ in threads:
        if not ready.acquire(timeout=TIMEOUT):
            raise RuntimeError("a session did not get to SELECT in time")
    go.set()
    for t in threads:
        t.join(TIMEOUT * rounds)
        if t.is_alive():
            raise RuntimeError("a session did not finish in time")
    if errors:
        raise RuntimeError(f"{len(errors)} sessions failed: {errors[0]}")
    return {k: (statistics.median(v), statistics.quantiles(v, n=20)[-1], statistics.fmean(v)) for k, v in out.items()}


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_writes(imap: int, append_count: int, sessions: int, rounds: int,
               pid: int | None = None) -> dict[str, tuple[float, ...]]:
    """APPEND/s, the mix's latencies and, given the server's `pid`, its CPU ms per command of the mix."""
    results: dict[str, tuple[float, ...]] = {"APPEND/s (1 client, 2 KB)": (append_rate(imap, append_count),),
                                             "APPEND/s in pieces (no NODELAY)": (append_rate(imap, append_count, True),)}
    before = process_cpu(pid) if pid is not None else 0.0
    for k, v in concurrent_latency(imap, sessions, rounds, MIX_MESSAGES).items():
        results[f"{k} x{sessions} (median/p95/mean)"] = v
    if pid is not None:
        spent = process_cpu(pid) - before
        results["server CPU ms per mix command"] = (1000 * spent / (sessions * rounds * len(MIX_COMMANDS)),)
    return results


def report_writes(ours: dict[str, tuple[float, ...]], theirs: dict[str, tuple[float, ...]]) -> None:
    print("\nwrites and concurrent sessions (issue 13 targets: APPEND/s >= Dovecot's; "
          "latency with 10 sessions <= 2x Dovecot's)")
    head = f"{'measure':<34}{'maillab':>18}{'dovecot':>18}{'ratio':>16}{'target':>10}"
    print(head)
    print("-" * len(head))
    for step, values in ours.items():
        other = theirs.get(step)
        if step.startswith("server CPU"):
            mine, ref, ratio, met = f"{values[0]:.2f}", "-", "-", "-"
        elif step.startswith("APPEND"):
            mine, ref = f"{values[0]:.1f}", f"{other[0]:.1f}" if other else "-"
            ratio = f"{values[0] / other[0]:.2f}x" if other else "-"
            met = "-" if not other else ("met" if values[0] >= other[0] else "NOT met")
        else:
            mine = "/".join(f"{v:.1f}" for v in values)
            ref = "/".join(f"{v:.1f}" for v in other) if other else "-"
            ratio = "/".join(f"{a / b:.1f}" for a, b in zip(values, other)) + "x" if other else "-"
            met = "-" if not other else ("met" if values[0] <= 2 * other[0] else "NOT met")
        print(f"{step:<34}{mine:>18}{ref:>18}{ratio:>16}{met:>10}")


def main_writes(args: argparse.Namespace, work: Path) -> None:
    state = work / "state"
    maildir = state / "mail" / "syr.edu" / "mafudge"
    generate(maildir, MIX_MESSAGES)
    pristine = work / "pristine"
    have_dovecot = shutil.which("dovecot") is not None
    if have_dovecot:
        shutil.copytree(maildir, pristine / "mafudge", symlinks=True)
    lab = Lab(state)
    lab.start()
    try:
        assert lab.proc is not None
        ours = run_writes(lab.imap, args.append_count, args.sessions, args.rounds, lab.proc.pid)
    finally:
        lab.stop()
    theirs: dict[str, tuple[float, ...]] = {}
    if have_dovecot:
        dovecot = Dovecot(work / "dovecot", pristine)
        dovecot.start()
        try:
            theirs = run_writes(dovecot.imap, args.append_count, args.sessions, args.rounds)
        finally:
            dovecot.stop()
    report_writes(ours, theirs)
    if not have_dovecot:
        print("dovecot is not installed: no reference (issue 13 quotes 142-774 APPEND/s, FETCH 14 ms, SEARCH 16 ms)")


# ---- the run ---------------------------------------------------------------------------------

def run_server(imap: int, pop3: int, count: int, deliver, latency_count: int) -> dict[str, tuple[float, ...]]:
    cold = script(imap, count)
    warm = script(imap, count)
    results: dict[str, tuple[float, ...]] = {k: (cold[k], warm[k]) for k in cold}
    if pop3:
        pop3_stat(pop3)
        results["POP3 STAT"] = (float("nan"), min(pop3_stat(pop3) for _ in range(3)))
    lat = idle_latency(imap, deliver, latency_count)
    q = statistics.quantiles(lat, n=10) if len(lat) >= 2 else lat * 9
    results["delivery→IDLE EXISTS (median)"] = (float("nan"), statistics.median(lat))
    results["delivery→IDLE EXISTS (p90)"] = (float("nan"), q[-1])
    return results


def fmt(ms: float | None) -> str:
    if ms is None or ms != ms:
        return "-"
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--latency-count", type=int, default=50)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--write", action="store_true", help="only APPEND/s and the concurrent-session mix")
    ap.add_argument("--append-count", type=int, default=500)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=30, help="FETCH/SEARCH/STORE rounds per session")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="maillab-bench-imap-"))
    if args.write:
        try:
            main_writes(args, work)
        finally:
            if args.keep:
                print(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        return 0
    labs: list[Lab] = []
    dovecot: Dovecot | None = None
    try:
        state = work / "state"
        maildir = state / "mail" / "syr.edu" / "mafudge"
        t0 = time.perf_counter()
        octets = generate(maildir, args.messages)
        print(f"generated {args.messages:,} messages ({octets / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s "
              f"under {work}", flush=True)
        pristine = work / "pristine"
        if shutil.which("dovecot"):
            shutil.copytree(maildir, pristine / "mafudge", symlinks=True)

        lab = Lab(state)
        labs.append(lab)
        lab.start()
        deliver, smtp_sock = smtp_deliverer(lab.smtp)
        ours = run_server(lab.imap, lab.pop3, args.messages, deliver, args.latency_count)
        smtp_sock.close()
        lab.stop()
        # restarts: the index is on disk, nothing in memory; one for IMAP, one for POP3
        again = Lab(state)
        labs.append(again)
        again.start()
        c = Imap(again.imap)
        c.command(f"LOGIN {USER} {PASSWORD}")
        ours["SELECT after a restart"] = (c.command("SELECT INBOX")[0], float("nan"))
        c.close()
        again.stop()
        third = Lab(state)
        labs.append(third)
        third.start()
        ours["POP3 STAT"] = (pop3_stat(third.pop3), ours["POP3 STAT"][1])
        third.stop()

        theirs: dict[str, tuple[float, ...]] = {}
        if shutil.which("dovecot"):
            dovecot = Dovecot(work / "dovecot", pristine)
            dovecot.start()
            theirs = run_server(dovecot.imap, dovecot.pop3, args.messages,
                                dovecot_deliverer(pristine / "mafudge"), args.latency_count)
        report(ours, theirs, args.messages)
    finally:
        for lab in labs:
            lab.stop()
        if dovecot is not None:
            dovecot.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(ours: dict[str, tuple[float, ...]], theirs: dict[str, tuple[float, ...]], count: int) -> None:
    print(f"\nmaillab IMAP/POP3 on a {count:,}-message mailbox (cold = first open, no index; warm = again)")
    if theirs:
        head = (f"{'step':<34}{'cold':>10}{'warm':>10}{'dovecot cold':>14}{'dovecot warm':>14}"
                f"{'warm ratio':>12}{'target':>10}")
    else:
        head = (f"{'step':<34}{'cold':>10}{'warm':>10}{'dovecot ref':>13}{'warm ratio':>12}{'target':>10}"
                f"{'met':>5}")
    print(head)
    print("-" * len(head))
    for step, (cold, warm) in ours.items():
        target = TARGETS.get(step)
        if theirs:
            tc, tw = theirs.get(step, (float("nan"), float("nan")))
            ratio = f"{warm / tw:.2f}x" if tw == tw and tw and warm == warm else "-"
            print(f"{step:<34}{fmt(cold):>10}{fmt(warm):>10}{fmt(tc):>14}{fmt(tw):>14}{ratio:>12}"
                  f"{fmt(target) if target else '-':>10}")
        else:
            ref = DOVECOT_REF.get(step, (None, None))[0]
            ratio = f"{warm / ref:.2f}x" if ref and warm == warm else "-"
            met = "" if target is None or warm != warm else ("yes" if warm <= target else "NO")
            print(f"{step:<34}{fmt(cold):>10}{fmt(warm):>10}{fmt(ref):>13}{ratio:>12}"
                  f"{fmt(target) if target else '-':>10}{met:>5}")
    cold_open = ours["SELECT"][0]
    print(f"\ncold open (first SELECT, index built from {count:,} files): {fmt(cold_open)} "
          f"(target < {COLD_OPEN_TARGET:.0f} ms: {'met' if cold_open < COLD_OPEN_TARGET else 'NOT met'})")
    if not theirs:
        print("dovecot is not installed: ratios are to the Dovecot 2.3 figures of issue 4 "
              "(delivery→IDLE: Postfix + Dovecot, 503 ms)")


if __name__ == "__main__":
    sys.exit(main())
