"""A private Postfix instance, the reference the ingest benchmark measures in the same run.

`PostfixInstance` writes its own main.cf and master.cf into a temporary
folder (config_directory, queue_directory, data_directory, the Maildir base
and its maillog all inside it), starts it with `postfix -c DIR start` and
stops it with `postfix -c DIR stop` (also when the run fails or is
interrupted: use it as a context manager).  It listens on 127.0.0.1 on a free
port only, accepts mail for one virtual mailbox (`virtual_mailbox_maps`, a
fixed uid/gid, no system user) and delivers it with Postfix's `virtual` agent
into a Maildir, so a message is done when it is a file in that Maildir's
new/, as in the lab.  No DNS (native host look-ups, no peer-name look-up), no
chroot, no client restrictions.  Everything else is Postfix 3.x's default
(in_flow_delay 1 s, queue file fsync), except `max_use`/`max_idle`, raised so
its processes live through a run and their CPU can be read from /proc (it
spares Postfix a re-exec every 100 sessions: that only flatters it).

Postfix's master must run as root; without root or without `postfix`,
`unavailable()` says why and the benchmark prints no Postfix figures.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
MASTER_CF = """\
127.0.0.1:{port} inet n - n - {smtpd_limit} smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
tlsmgr    unix  - - n 1000? 1 tlsmgr
"""


def unavailable() -> str | None:
    """Why no private Postfix can run here, or None when it can."""
    if not Path(POSTFIX).exists():
        return f"{POSTFIX} not found (Debian package postfix)"
    if os.geteuid() != 0:
        return "Postfix's master must start as root"
    return None


def version() -> str:
    out = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def traversable(path: Path) -> bool:
    """Can every user walk down to `path` (the virtual agent writes as an unprivileged uid)?"""
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


def instance_parent(work: Path) -> Path:
    """`work` when an unprivileged uid can reach it, else /var/tmp (a root home is 0700).
    Same file system as `work` or not, the caller prints which."""
    return work if traversable(work) else Path("/var/tmp")


def _kb(pid: int, file: str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class PostfixInstance:
    """Postfix for one benchmark run: mail to `recipient` lands in `maildir / "new"`."""

    def __init__(self, parent: Path, recipient: str, smtpd_limit: int = 100,
                 tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: a certificate chain and key for STARTTLS (smtpd_tls_security_level = may),
        copied into the instance (Postfix reads them as root before it drops privileges)."""
        self.dir = Path(tempfile.mkdtemp(prefix="postfix-bench-", dir=parent))
        self.port = free_port()
        self.recipient = recipient
        local, domain = recipient.split("@")
        self.etc, self.queue, self.data, self.base = (self.dir / n for n in ("etc", "queue", "data", "mail"))
        self.maildir = self.base / domain / local
        self.maillog = self.dir / "maillog"
        self.rotations = 0
        owner = pwd.getpwnam("postfix")
        nobody = pwd.getpwnam("nobody")
        for d in (self.etc, self.queue, self.data, self.base):
            d.mkdir()
        os.chown(self.data, owner.pw_uid, owner.pw_gid)
        os.chmod(self.dir, 0o755)
        os.chown(self.base, nobody.pw_uid, nobody.pw_gid)
        (self.etc / "master.cf").write_text(MASTER_CF.format(port=self.port, smtpd_limit=smtpd_limit))
        (self.etc / "vmailbox").write_text(f"{recipient} {domain}/{local}/\n")
        (self.etc / "main.cf").write_text("")
        settings = {
            "compatibility_level": "3.6",
            "config_directory": self.etc, "queue_directory": self.queue, "data_directory": self.data,
            "maillog_file": self.maillog,
            "myhostname": "smtp1." + domain, "mydomain": domain, "mydestination": "",
            "inet_interfaces": "127.0.0.1", "inet_protocols": "ipv4", "mynetworks": "127.0.0.0/8",
            "alias_maps": "", "alias_database": "", "local_transport": "error:no local mail", "biff": "no",
            "virtual_mailbox_domains": domain, "virtual_mailbox_base": self.base,
            "virtual_mailbox_maps": f"texthash:{self.etc / 'vmailbox'}",
            "virtual_uid_maps": f"static:{nobody.pw_uid}", "virtual_gid_maps": f"static:{nobody.pw_gid}",
            "smtp_host_lookup": "native", "lmtp_host_lookup": "native", "disable_dns_lookups": "yes",
            "smtpd_peername_lookup": "no", "smtpd_client_restrictions": "",
            "max_use": "100000", "max_idle": "3600",
        }
        if tls is not None:
            cert, key = self.etc / "cert.pem", self.etc / "key.pem"
            cert.write_bytes(tls[0].read_bytes())
            key.touch(0o600)
            key.write_bytes(tls[1].read_bytes())
            settings |= {"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": cert,
                         "smtpd_tls_key_file": key, "smtpd_tls_loglevel": "0"}
        self._run("postconf", "-c", str(self.etc), "-e", *(f"{k}={v}" for k, v in settings.items()))
        self.started = False

    def _run(self, *argv: str) -> None:
        out = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if out.returncode:
            raise RuntimeError(f"{' '.join(argv[:3])}: exit {out.returncode}: "
                               f"{(out.stderr or out.stdout).strip()[-1000:]}")

    def start(self, timeout: float = 20.0) -> None:
        self.started = True
        self._run(POSTFIX, "-c", str(self.etc), "start")
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Postfix never listened on 127.0.0.1:{self.port}: "
                                   f"{self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.started:
            self.started = False
            try:
                self._run(POSTFIX, "-c", str(self.etc), "stop")
            except RuntimeError:
                pid = self.master_pid()
                if pid:
                    os.kill(pid, 15)
            deadline = time.monotonic() + 10
            while self.master_pid() and time.monotonic() < deadline:
                time.sleep(0.05)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PostfixInstance":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.maillog.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def new_maildir(self) -> Path:
        """Move the Maildir filled so far aside (a rename: no deletion slows the disk) and
        return the new/ that the next deliveries create, so each measurement starts empty."""
        if self.maildir.exists():
            self.rotations += 1
            self.maildir.rename(self.maildir.with_name(f"{self.maildir.name}-{self.rotations}"))
        return self.maildir / "new"

    # -- its processes -----------------------------------------------------------
    def master_pid(self) -> int:
        try:
            pid = int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0
        return pid if Path(f"/proc/{pid}").exists() else 0

    def processes(self) -> dict[int, str]:
        """pid -> program name of the master and each of its children."""
        master = self.master_pid()
        if not master:
            return {}
        found = {master: "master"}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                comm, _, rest = Path(entry.path, "stat").read_text().rpartition(")")
            except OSError:
                continue
            if int(rest.split()[1]) == master:
                found[int(entry.name)] = comm.partition("(")[2]
        return found

    def smtpd_memory(self) -> tuple[int, int, int]:
        """(number of smtpd processes, sum of their VmRSS, sum of their Pss), KiB."""
        pids = [pid for pid, name in self.processes().items() if name == "smtpd"]
        return (len(pids), sum(_kb(p, "status", "VmRSS") for p in pids),
                sum(_kb(p, "smaps_rollup", "Pss") for p in pids))
