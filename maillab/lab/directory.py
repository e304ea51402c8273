"""The account directory: users, passwords and aliases, kept in TinyDB.

TinyDB's own JSONStorage rewrites its file in place, so a kill at the wrong
moment leaves invalid JSON (docs/LIBNOTES.md).  `AtomicJSONStorage` writes a temp
file, fsyncs it and renames it over the old one: the file on disk is always a
whole, valid database.  The directory is seeded from the world on first use;
later changes (the `accounts` command) live only here.

Passwords are stored as scrypt hashes.  Login names are full addresses; the
bare local part also works on the domain's own mailbox host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from ..base.fsutil import write_durable
from .world import World


class AtomicJSONStorage(Storage):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return json.loads(text) if text.strip() else None

    def write(self, data: dict[str, Any]) -> None:
        write_durable(self.path, json.dumps(data, indent=1, sort_keys=True).encode())

    def close(self) -> None:
        pass


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2 ** 12, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


_DUMMY_HASH = hash_password("", bytes(16))    # what an unknown login is checked against


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)).split("$")[2], digest)


@dataclass(frozen=True, slots=True)
class Account:
    address: str
    display: str
    enabled: bool = True

    @property
    def local(self) -> str:
        return self.address.rsplit("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]


class Directory:
    """Accounts and aliases of one lab, with fast in-memory look-ups."""

    def __init__(self, path: Path) -> None:
        self._db = TinyDB(path, storage=AtomicJSONStorage)
        self._accounts = self._db.table("accounts")
        self._aliases = self._db.table("aliases")
        self._verified: dict[tuple[str, str], str] = {}
        self._reload()

    def close(self) -> None:
        self._db.close()

    def _reload(self) -> None:
        self._by_address = {r["address"]: r for r in self._accounts.all()}
        self._alias_map = {r["address"]: r["target"] for r in self._aliases.all()}
        self._verified.clear()

    def seed(self, world: World) -> bool:
        """Fill an empty directory from the world's users and aliases; True if it did."""
        if self._by_address or self._alias_map:
            return False
        self._accounts.insert_multiple(
            {"address": u.address, "display": u.display, "password": hash_password(u.password),
             "enabled": True}
            for d in world.domains.values() for u in d.users)
        self._aliases.insert_multiple(
            {"address": f"{alias}@{d.name}", "target": f"{target}@{d.name}"}
            for d in world.domains.values() for alias, target in d.aliases)
        self._reload()
        return True

    def account(self, address: str) -> Account | None:
        r = self._by_address.get(address.lower())
        return Account(r["address"], r.get("display", ""), r.get("enabled", True)) if r else None

    def resolve(self, address: str) -> Account | None:
        """The account that mail for `address` reaches, through at most one alias."""
        address = address.lower()
        return self.account(self._alias_map.get(address, address))

    def authenticate(self, login: str, password: str, local_domains: tuple[str, ...] = ()) -> Account | None:
        """Check a login; a bare local part is tried in `local_domains` (the host's own)."""
        login = login.strip().lower()
        candidates = [login] if "@" in login else [f"{login}@{d}" for d in local_domains]
        hashed = False
        for address in candidates:
            record = self._by_address.get(address)
            if record is None or not record.get("enabled", True):
                continue
            key = (address, hashlib.sha256(password.encode("utf-8", "surrogateescape")).hexdigest())
            if key in self._verified:
                return self.account(address)
            hashed = True
            if check_password(password, record["password"]):
                self._verified[key] = address
                return self.account(address)
        if not hashed:          # an unknown user costs a hash too: no user enumeration by timing
            check_password(password, _DUMMY_HASH)
        return None

    def accounts(self) -> list[Account]:
        return [Account(r["address"], r.get("display", ""), r.get("enabled", True))
                for r in self._by_address.values()]
