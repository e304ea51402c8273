"""The account directory's stored credentials (lab/directory.py): an scrypt hash and SCRAM-SHA-256
keys, never the password; the file's stated format; a format-1 file (scrypt only) still logs in
and gains SCRAM keys at the next password login; unknown logins get steady made-up SCRAM keys."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from scramp import ScramClient

from maillab.base.sasl import Challenge, SaslExchange, ScramLookup
from maillab.lab.directory import FORMAT, VERSION, Directory, DirectoryError, hash_password
from maillab.lab.world import Domain, User

SECRET = "Tr0ub4dor-correct-horse"          # a password no other text in the file contains


def world(password: str = SECRET) -> SimpleNamespace:
    users = (User("mafudge", "syr.edu", "Michael Fudge", password), User("relstad", "syr.edu", "", password))
    return SimpleNamespace(domains={"syr.edu": Domain("syr.edu", ((10, "smtp1.syr.edu"),), users,
                                                      (("postmaster", "mafudge"),))})


def scram_login(directory: Directory, login: str, password: str, domains: tuple[str, ...] = ()) -> str | None:
    """A whole SCRAM-SHA-256 exchange (scramp's client) against `directory`'s keys: the proven account."""
    client = ScramClient(["SCRAM-SHA-256"], login, password)
    x = SaslExchange("SCRAM-SHA-256")
    lookup = x.start(client.get_client_first().encode())
    assert isinstance(lookup, ScramLookup)
    first = x.credentials(directory.scram_credentials(lookup.login, domains))
    client.set_server_first(first.data.decode())
    step = x.respond(client.get_client_final().encode())
    if isinstance(step, Challenge):
        client.set_server_final(step.data.decode())
        step = x.respond(b"")
    return step.proven


def test_the_file_states_its_format_and_holds_no_password(tmp_path):
    path = tmp_path / "directory.json"
    d = Directory(path)
    assert d.seed(world())
    d.close()
    text = path.read_text()
    assert SECRET not in text
    data = json.loads(text)
    meta = data["meta"]["1"]
    assert meta["format"] == FORMAT and meta["version"] == VERSION and "StoredKey" in meta["credentials"]
    record = next(r for r in data["accounts"].values() if r["address"] == "mafudge@syr.edu")
    assert record["password"].startswith("scrypt$")
    assert set(record["scram-sha-256"]) == {"salt", "iterations", "stored_key", "server_key"}
    assert record["scram-sha-256"]["iterations"] == 4096


def test_password_and_scram_logins(tmp_path):
    d = Directory(tmp_path / "directory.json")
    d.seed(world())
    assert d.authenticate("mafudge@syr.edu", SECRET).address == "mafudge@syr.edu"
    assert d.authenticate("mafudge", SECRET, ("syr.edu",)).address == "mafudge@syr.edu"
    assert d.authenticate("mafudge@syr.edu", "wrong") is None
    assert scram_login(d, "mafudge@syr.edu", SECRET) == "mafudge@syr.edu"
    assert scram_login(d, "MaFudge", SECRET, ("syr.edu",)) == "mafudge@syr.edu"
    assert scram_login(d, "mafudge@syr.edu", "wrong") is None


def test_unknown_logins_get_steady_made_up_keys(tmp_path):
    d = Directory(tmp_path / "directory.json")
    d.seed(world())
    fake = d.scram_credentials("nobody@syr.edu")
    assert fake.account is None and fake.iterations == 4096 and len(fake.salt) == 16
    assert d.scram_credentials("nobody@syr.edu") == fake            # the same server-first each time
    assert d.scram_credentials("other@syr.edu").salt != fake.salt
    real = d.scram_credentials("mafudge@syr.edu")
    assert real.salt != fake.salt and len(real.salt) == len(fake.salt)      # nothing tells them apart
    assert scram_login(d, "nobody@syr.edu", SECRET) is None
    d.close()
    assert Directory(tmp_path / "directory.json").scram_credentials("nobody@syr.edu") == fake   # kept key
    other_lab = Directory(tmp_path / "other.json")
    assert other_lab.scram_credentials("nobody@syr.edu").salt != fake.salt


def test_a_disabled_account_gets_made_up_keys(tmp_path):
    path = tmp_path / "directory.json"
    d = Directory(path)
    d.seed(world())
    d.close()
    data = json.loads(path.read_text())
    for r in data["accounts"].values():
        r["enabled"] = r["address"] != "relstad@syr.edu"
    path.write_text(json.dumps(data))
    d = Directory(path)
    assert d.scram_credentials("relstad@syr.edu").account is None
    assert scram_login(d, "relstad@syr.edu", SECRET) is None


def format_1_file(path, password: str = SECRET) -> None:
    """A directory as maillab wrote it before SCRAM: scrypt hashes, no meta table."""
    accounts = {str(i): {"address": a, "display": "", "password": hash_password(password), "enabled": True}
                for i, a in enumerate(("mafudge@syr.edu", "relstad@syr.edu"), 1)}
    path.write_text(json.dumps({"accounts": accounts,
                                "aliases": {"1": {"address": "postmaster@syr.edu", "target": "mafudge@syr.edu"}}}))


def test_a_format_1_file_logs_in_and_gains_scram_keys_at_the_next_password_login(tmp_path):
    path = tmp_path / "directory.json"
    format_1_file(path)
    d = Directory(path)
    assert json.loads(path.read_text())["meta"]["1"]["version"] == VERSION        # marked at once
    assert d.scram_missing("mafudge@syr.edu") and not d.scram_missing("nobody@syr.edu")
    assert scram_login(d, "mafudge@syr.edu", SECRET) is None                      # no keys yet
    assert d.authenticate("mafudge@syr.edu", SECRET).address == "mafudge@syr.edu"  # PLAIN/LOGIN still work
    assert not d.scram_missing("mafudge@syr.edu") and d.scram_missing("relstad@syr.edu")
    assert scram_login(d, "mafudge@syr.edu", SECRET) == "mafudge@syr.edu"
    d.close()
    assert SECRET not in path.read_text()
    again = Directory(path)                                                        # the keys were kept
    assert scram_login(again, "mafudge@syr.edu", SECRET) == "mafudge@syr.edu"
    assert again.resolve("postmaster@syr.edu").address == "mafudge@syr.edu"


def test_a_newer_or_foreign_format_is_one_clear_error(tmp_path):
    path = tmp_path / "directory.json"
    path.write_text(json.dumps({"meta": {"1": {"format": FORMAT, "version": VERSION + 1}}}))
    with pytest.raises(DirectoryError, match=f"format {VERSION + 1} is newer"):
        Directory(path)
    path.write_text(json.dumps({"meta": {"1": {"format": "something else", "version": 1}}}))
    with pytest.raises(DirectoryError, match="not a maillab directory"):
        Directory(path)
