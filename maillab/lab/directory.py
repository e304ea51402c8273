"""The account directory: users, passwords and aliases, kept in TinyDB.

TinyDB's own JSONStorage rewrites its file in place, so a kill at the wrong
moment leaves invalid JSON (docs/LIBNOTES.md).  `AtomicJSONStorage` writes a temp
file, fsyncs it and renames it over the old one: the file on disk is always a
whole, valid database.  The directory is seeded from the world on first use;
later changes (the `accounts` command) live only here.

Login names are full addresses; the bare local part also works on the domain's
own mailbox host.  The file says its format (`FORMAT`, the "meta" table), and
holds no password, only what checks one:

    accounts  address, display, enabled,
              "password": "scrypt$<salt hex>$<digest hex>" (n=2^12, r=8, p=1), for PLAIN, LOGIN,
                          IMAP LOGIN and POP3 USER/PASS;
              "scram-sha-256": {"salt", "iterations", "stored_key", "server_key"} (base64;
                          RFC 5802 §3, RFC 7677: 4096 iterations), for SCRAM-SHA-256
    aliases   address, target
    meta      format, version (2), credentials (these words), fake_salt_key (hex)

Format 1 (before SCRAM: no meta table, no SCRAM keys) is read as is and marked 2
when opened; an account without SCRAM keys can still log in with a password, and
gets its keys at its next good password login (SCRAM needs the password once).
An unknown or disabled login costs the same work as a known one: a password is
checked against a dummy hash, and SCRAM gets made-up keys whose salt is derived
from the login and `fake_salt_key`, so it is the same at every attempt (RFC 5802 §9).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.storages import Storage

from ..base.errors import UserError
from ..base.fsutil import write_durable
from ..base.sasl import SCRAM_ITERATIONS, SCRAM_SALT, ScramCredentials, scram_keys
from .world import World

FORMAT = "maillab directory"
VERSION = 2                     # 1: scrypt hashes only; 2: and SCRAM-SHA-256 keys, the meta table
CREDENTIALS = ("password: scrypt$salt$digest (n=4096, r=8, p=1); scram-sha-256: salt, iterations, "
               "StoredKey, ServerKey (RFC 5802, RFC 7677), base64; never the password")
SCRAM = "scram-sha-256"


class DirectoryError(UserError):
    """A directory file this maillab cannot use."""


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


def _scram_record(password: str) -> dict[str, str | int]:
    """An account's SCRAM-SHA-256 keys as the file keeps them (base64)."""
    salt, iterations, stored_key, server_key = scram_keys(password)
    return {"salt": _b64(salt), "iterations": iterations, "stored_key": _b64(stored_key),
            "server_key": _b64(server_key)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


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
        self._write_lock = threading.Lock()      # logins run in worker threads; one writer at a time
        self._verified: dict[tuple[str, str], str] = {}
        self._fake_salt_key = self._meta(path)
        self._reload()

    def _meta(self, path: Path) -> bytes:
        """The file's format, checked (format 1 is marked 2); the key of the unknown logins' salts."""
        meta = self._db.table("meta")
        doc = meta.get(doc_id=1)
        if doc is not None and (doc.get("format") != FORMAT or not isinstance(doc.get("version"), int)):
            raise DirectoryError(f"{path}: not a maillab directory (its meta table says {dict(doc)})")
        if doc is not None and doc["version"] > VERSION:
            raise DirectoryError(f"{path}: directory format {doc['version']} is newer than this "
                                 f"maillab reads ({VERSION})")
        if doc is None or doc["version"] < VERSION:
            key = doc.get("fake_salt_key") if doc else None
            meta.truncate()
            meta.insert({"format": FORMAT, "version": VERSION, "credentials": CREDENTIALS,
                         "fake_salt_key": key or secrets.token_hex(32)})
            doc = meta.get(doc_id=1)
            assert doc is not None
        return bytes.fromhex(doc["fake_salt_key"])

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
             SCRAM: _scram_record(u.password), "enabled": True}
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

    def _candidates(self, login: str, local_domains: tuple[str, ...]) -> list[str]:
        login = login.strip().lower()
        return [login] if "@" in login else [f"{login}@{d}" for d in local_domains]

    def authenticate(self, login: str, password: str, local_domains: tuple[str, ...] = ()) -> Account | None:
        """Check a login; a bare local part is tried in `local_domains` (the host's own).  An
        account without SCRAM keys gets them now (blocking: call it off the loop)."""
        hashed = False
        for address in self._candidates(login, local_domains):
            record = self._by_address.get(address)
            if record is None or not record.get("enabled", True):
                continue
            key = (address, hashlib.sha256(password.encode("utf-8", "surrogateescape")).hexdigest())
            if key in self._verified:
                return self.account(address)
            hashed = True
            if check_password(password, record["password"]):
                self._verified[key] = address
                if SCRAM not in record:
                    self._add_scram(address, password)
                return self.account(address)
        if not hashed:          # an unknown user costs a hash too: no user enumeration by timing
            check_password(password, _DUMMY_HASH)
        return None

    def _add_scram(self, address: str, password: str) -> None:
        """Store SCRAM keys for an account of format 1, at its first good password login."""
        scram = _scram_record(password)
        with self._write_lock:
            try:
                self._accounts.update({SCRAM: scram}, Query().address == address)
            except OSError:
                return          # the disk refused: the login still counts, the next one tries again
            self._by_address[address] = {**self._by_address[address], SCRAM: scram}

    def scram_credentials(self, login: str, local_domains: tuple[str, ...] = ()) -> ScramCredentials:
        """The SCRAM-SHA-256 keys of `login` (a bare local part tried in `local_domains`); for an
        unknown or disabled login, or one without keys yet, made-up keys that no proof matches,
        the same at every attempt (RFC 5802 §9), at the same cost as real ones."""
        fake = self._fake_scram(login.strip().lower())
        for address in self._candidates(login, local_domains):
            record = self._by_address.get(address)
            if record is not None and record.get("enabled", True) and SCRAM in record:
                s = record[SCRAM]
                return ScramCredentials(base64.b64decode(s["salt"]), int(s["iterations"]),
                                        base64.b64decode(s["stored_key"]), base64.b64decode(s["server_key"]),
                                        address)
        return fake

    def scram_missing(self, login: str, local_domains: tuple[str, ...] = ()) -> bool:
        """Whether `login` is an enabled account with no SCRAM keys yet (of format 1: they are
        made at its next good password login), so that SCRAM cannot succeed for it."""
        records = [self._by_address.get(a) for a in self._candidates(login, local_domains)]
        usable = [r for r in records if r is not None and r.get("enabled", True)]
        return bool(usable) and not any(SCRAM in r for r in usable)

    def _fake_scram(self, login: str) -> ScramCredentials:
        def derive(label: bytes) -> bytes:
            return hmac.digest(self._fake_salt_key, label + login.encode("utf-8", "surrogateescape"), "sha256")
        return ScramCredentials(derive(b"salt:")[:SCRAM_SALT], SCRAM_ITERATIONS, derive(b"stored:"), derive(b"server:"),
                                None)

    def accounts(self) -> list[Account]:
        return [Account(r["address"], r.get("display", ""), r.get("enabled", True))
                for r in self._by_address.values()]
