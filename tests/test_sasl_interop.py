"""SCRAM-SHA-256 over real sockets against a lab of the default world, so over TLS with the lab CA
(logins wait for TLS): smtplib (STARTTLS) and imaplib (IMAPS) with scramp's client as their auth
callback, POP3 AUTH spoken raw on POP3S, and the real clients on this box that do SCRAM: msmtp
(SMTP) and mutt (IMAP) through GNU SASL, mbsync (IMAP) through Cyrus SASL.

curl is not among them: Debian's curl 7.88 is built without libgsasl (`curl -V` lists no gsasl),
and `--login-options AUTH=SCRAM-SHA-256` ends in "No known authentication mechanisms supported".
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import os
import re
import smtplib
import socket
import ssl
import subprocess

import pytest

from conftest import async_wait_for, free_offset
from maillab.base.clock import Clock
from maillab.lab.directory import hash_password
from maillab.lab.state import StateDir
from maillab.lab.supervisor import Lab
from maillab.lab.world import load_world
from maillab.net.ports import Ports
from netutil import require_tool
from sasl_support import SCRAM, ScramAuth, scram_dialogue
from test_imap_interop import MBSYNCRC, MUTTRC, Tmux

HOST = "127.0.0.1"                  # smtp1.syr.edu: syr.edu's submission, IMAP and POP3 host
USER, PASSWORD = "mafudge@syr.edu", "maillab"


def maillog(lab) -> str:
    return lab.state.maillog.read_text(encoding="utf-8", errors="replace")


def verifying(lab) -> ssl.SSLContext:
    """A client context trusting the lab CA: logins need TLS in the default world."""
    return ssl.create_default_context(cafile=lab.state.tls_dir / "ca.pem")


# ---- SMTP: smtplib's auth() takes any mechanism with a callback ----------------------------------

def smtp_scram(lab, auth: ScramAuth) -> tuple[int, bytes]:
    with smtplib.SMTP(HOST, lab.ports.submission, timeout=20) as smtp:
        smtp.starttls(context=verifying(lab))
        smtp.ehlo("laptop.example")
        assert "SCRAM-SHA-256" in smtp.esmtp_features["auth"].split()
        try:
            return smtp.auth(SCRAM, auth)                   # the client-first as initial response
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code, e.smtp_error


async def test_smtplib_scram_sha_256_on_submission(lab):
    auth = ScramAuth(USER, PASSWORD)
    code, text = await asyncio.to_thread(smtp_scram, lab, auth)
    assert (code, text) == (235, b"2.7.0 Authentication successful") and auth.verified


async def test_smtplib_scram_wrong_password_is_535_with_the_penalty(lab):
    lab.ctx.auth_guard.base_delay = 0.01
    code, _ = await asyncio.to_thread(smtp_scram, lab, ScramAuth(USER, "wrong"))
    assert code == 535
    log = await async_wait_for(lambda: "auth penalty: rip=127.0.0.1" in maillog(lab) and maillog(lab))
    assert "SASL SCRAM-SHA-256 authentication failed" in log


def smtp_plain(lab) -> tuple[int, bytes]:
    with smtplib.SMTP(HOST, lab.ports.submission, timeout=20) as smtp:
        smtp.starttls(context=verifying(lab))
        smtp.ehlo("laptop.example")
        return smtp.login(USER, PASSWORD, initial_response_ok=True)


async def test_a_state_folder_from_before_scram_logs_in_and_gains_scram_keys(tmp_path):
    """A directory.json of format 1 (scrypt hashes only): PLAIN still logs in, SCRAM fails (the
    maillog says why) until that first password login has made the keys."""
    world = load_world()
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    accounts = {str(i): {"address": u.address, "display": u.display, "password": hash_password(u.password),
                         "enabled": True}
                for i, u in enumerate((u for d in world.domains.values() for u in d.users), 1)}
    (state / "directory.json").write_text(json.dumps({"accounts": accounts, "aliases": {}}))
    lab = Lab(world=world, state=StateDir(state), ports=Ports(free_offset()), clock=Clock(), session_timeout=30)
    await lab.start()
    try:
        lab.ctx.auth_guard.base_delay = 0.01
        code, _ = await asyncio.to_thread(smtp_scram, lab, ScramAuth(USER, PASSWORD))
        assert code == 535
        await async_wait_for(lambda: f"SCRAM-SHA-256 keys of <{USER}> are not stored yet" in maillog(lab))
        assert (await asyncio.to_thread(smtp_plain, lab))[0] == 235
        auth = ScramAuth(USER, PASSWORD)
        assert (await asyncio.to_thread(smtp_scram, lab, auth))[0] == 235 and auth.verified
    finally:
        await lab.stop()
    assert PASSWORD not in (state / "directory.json").read_text().replace("maillab directory", "")


# ---- IMAP: imaplib.authenticate with a callback ---------------------------------------------------

def imap_scram(lab, auth: ScramAuth) -> str:
    imap = imaplib.IMAP4_SSL(HOST, lab.ports.imaps, ssl_context=verifying(lab), timeout=20)
    try:
        assert "AUTH=SCRAM-SHA-256" in imap.capabilities
        try:
            typ, _ = imap.authenticate(SCRAM, auth)
        except imaplib.IMAP4.error as e:
            return str(e)
        typ, data = imap.select("INBOX")
        return f"{typ} {data[0].decode()}"
    finally:
        imap.shutdown()


async def test_imaplib_scram_sha_256_logs_in(lab):
    auth = ScramAuth(USER, PASSWORD)
    assert await asyncio.to_thread(imap_scram, lab, auth) == "OK 0" and auth.verified
    await async_wait_for(lambda: f"Login: user=<{USER}>, method=SCRAM-SHA-256" in maillog(lab))


async def test_imaplib_scram_wrong_password_and_unknown_user_fail_alike(lab):
    lab.ctx.auth_guard.base_delay = 0.01
    wrong = await asyncio.to_thread(imap_scram, lab, ScramAuth(USER, "wrong"))
    unknown = await asyncio.to_thread(imap_scram, lab, ScramAuth("nobody@syr.edu", PASSWORD))
    assert "AUTHENTICATIONFAILED" in wrong and wrong == unknown.replace("nobody", "mafudge")


# ---- POP3: AUTH spoken raw (poplib has no SASL) ---------------------------------------------------

class Lines:
    """A line-at-a-time client over TLS on connect (POP3S)."""

    def __init__(self, lab) -> None:
        raw = socket.create_connection((HOST, lab.ports.pop3s), timeout=20)
        self.sock = verifying(lab).wrap_socket(raw, server_hostname="smtp1.syr.edu")
        self.file = self.sock.makefile("rb")

    def read(self) -> str:
        return self.file.readline().decode().rstrip("\r\n")

    def say(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.read()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def pop3_scram(lab, auth: ScramAuth, initial: bool) -> list[str]:
    pop = Lines(lab)
    try:
        pop.read()
        return scram_dialogue(pop.say, f"AUTH {SCRAM}", "+ ", auth, initial) + [pop.say("STAT")]
    finally:
        pop.close()


@pytest.mark.parametrize("initial", [True, False])
async def test_pop3_auth_scram_sha_256(lab, initial):
    auth = ScramAuth(USER, PASSWORD)
    seen = await asyncio.to_thread(pop3_scram, lab, auth, initial)
    assert auth.verified and seen[-2].startswith("+OK maildrop has 0 messages") and seen[-1] == "+OK 0 0"


def pop3_capa(lab) -> list[str]:
    pop = Lines(lab)
    try:
        pop.read()
        assert pop.say("CAPA") == "+OK capability list follows"
        caps = []
        while (line := pop.read()) != ".":
            caps.append(line)
        return caps
    finally:
        pop.close()


async def test_pop3_capa_and_a_wrong_scram_proof(lab):
    lab.ctx.auth_guard.base_delay = 0.01
    assert "SASL PLAIN LOGIN SCRAM-SHA-256" in await asyncio.to_thread(pop3_capa, lab)
    seen = await asyncio.to_thread(pop3_scram, lab, ScramAuth(USER, "wrong"), True)
    assert seen[-2] == "-ERR [AUTH] invalid login or password"


# ---- real clients that do SCRAM: GNU SASL's and Cyrus SASL's ----------------------------------------------------

async def test_msmtp_scram_sha_256_on_submission(lab, tmp_path):
    msmtp = require_tool("msmtp")
    conf = tmp_path / "msmtprc"
    conf.write_text(f"account lab\nhost {HOST}\nport {lab.ports.submission}\ntls on\ntls_starttls on\n"
                    f"tls_trust_file {lab.state.tls_dir / 'ca.pem'}\nfrom {USER}\n"
                    f"auth scram-sha-256\nuser {USER}\npassword {PASSWORD}\naccount default : lab\n")
    conf.chmod(0o600)
    done = await asyncio.to_thread(subprocess.run, [msmtp, "-C", str(conf), "--debug", "-t"], capture_output=True,
                                   timeout=60, input=b"To: tajorgen@syr.edu\nSubject: scram\n\nvia SCRAM\n")
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert "--> AUTH SCRAM-SHA-256" in done.stdout.decode()
    await async_wait_for(lambda: re.search(r"sasl_method=SCRAM-SHA-256, sasl_username=mafudge@syr.edu",
                                           maillog(lab)))


async def test_mutt_logs_in_to_imap_with_scram_sha_256(lab, tmp_path):
    mutt, tmux_path = require_tool("mutt"), require_tool("tmux")
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(MUTTRC.format(user=USER, port=lab.ports.imaps, ca=lab.state.tls_dir / "ca.pem") + 'set imap_authenticators="scram-sha-256"\n')
    env = {**os.environ, "HOME": str(tmp_path), "TERM": "xterm"}
    tmux = Tmux(tmux_path, f"maillab-scram-{os.getpid()}-{lab.ports.offset}", env)
    await asyncio.to_thread(tmux, "new-session", "-d", "-s", tmux.name, "-x", "150", "-y", "40",
                            f"{mutt} -n -F {muttrc}")
    try:
        await async_wait_for(lambda: f"Login: user=<{USER}>, method=SCRAM-SHA-256" in maillog(lab), timeout=20,
                             what=lambda: f"mutt's SCRAM login; its screen:\n{tmux.screen()}")
    finally:
        await asyncio.to_thread(tmux, "kill-server")


async def test_mbsync_logs_in_to_imap_with_scram_sha_256_through_cyrus_sasl(lab, tmp_path):
    mbsync = require_tool("mbsync")
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(MBSYNCRC.format(port=lab.ports.imap, user=USER, local=local, ca=lab.state.tls_dir / "ca.pem")
                  .replace("AuthMechs LOGIN", "AuthMechs SCRAM-SHA-256"))
    done = await asyncio.to_thread(subprocess.run, [mbsync, "-V", "-c", str(rc), "lab"], capture_output=True,
                                   timeout=60)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert "Authenticating with SASL mechanism SCRAM-SHA-256" in done.stdout.decode()
    assert (local / "INBOX" / "cur").is_dir()
    await async_wait_for(lambda: f"Login: user=<{USER}>, method=SCRAM-SHA-256" in maillog(lab))
