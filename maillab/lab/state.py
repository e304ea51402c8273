"""The state folder: everything a lab keeps between runs.

    <state>/
      lab.lock            held (fcntl) while a lab runs on this folder
      directory.json      accounts and aliases (TinyDB, atomic writes)
      spool/<host>/       the queue of each MTA host (see queue/spool.py)
      mail/<domain>/<local>/   each user's Maildir (cur, new, tmp)
      log/maillog         the maillog
      tls/                the lab CA and each host's certificate and key (see lab/ca.py)

The default folder is per user ($XDG_DATA_HOME/maillab, else
~/.local/share/maillab).  `reset` removes a folder that is not in use.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from ..base.errors import UserError
from ..base.fsutil import UnsafeFolder, private_dir


class StateError(UserError):
    """A state folder that can not be used; str() is one line for the user."""


def default_state_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "maillab"


class StateDir:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_state_path()
        self._lock_fd: int | None = None

    @property
    def directory_file(self) -> Path:
        return self.root / "directory.json"

    @property
    def clock_file(self) -> Path:
        return self.root / "clock.json"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def dkim_dir(self) -> Path:
        return self.root / "dkim"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def maillog(self) -> Path:
        return self.log_dir / "maillog"

    def spool(self, host: str) -> Path:
        return self.root / "spool" / host

    def maildir(self, domain: str, local: str) -> Path:
        if not local or "/" in local or local.startswith(".") or "\x00" in local:
            raise StateError(f"unsafe mailbox name {local!r}")
        return self.root / "mail" / domain / local

    def one_file_system(self) -> bool:
        """Whether the spool and the Maildirs live on the state folder's file system (no mount
        or symlink leads elsewhere): then one syncfs of it flushes them all."""
        return len({os.stat(p).st_dev for p in (self.root, self.root / "spool", self.root / "mail")}) == 1

    def prepare(self) -> None:
        """Create the folder tree and take the lock; fails if another lab uses it."""
        try:
            for sub in (self.root, self.log_dir, self.root / "spool", self.root / "mail"):
                private_dir(sub)
        except OSError as e:
            raise StateError(f"{self.root}: cannot create the state folder: {e.strerror}") from None
        except UnsafeFolder as e:
            raise StateError(f"unsafe state folder: {e}") from None
        fd = os.open(self.root / "lab.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(f"{self.root}: another maillab is running on this state folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def in_use(self) -> bool:
        lock = self.root / "lab.lock"
        if not lock.exists():
            return False
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def reset(self) -> None:
        """Remove the whole state folder (refused while a lab runs on it)."""
        if not self.root.exists():
            return
        if self.in_use():
            raise StateError(f"{self.root}: a lab is running on this state folder; stop it first")
        ours = (self.root / "lab.lock").exists() or (self.tls_dir / "ca.pem").exists()   # `maillab ca` alone
        if not ours and any(self.root.iterdir()):
            raise StateError(f"{self.root}: does not look like a maillab state folder; not removing it")
        shutil.rmtree(self.root)
