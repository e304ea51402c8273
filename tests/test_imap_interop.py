"""Real mail clients against the lab's IMAP (and POP3) over loopback: curl, mbsync, fetchmail, mutt.

Each tool is driven as a user would run it, with its configuration written to
tmp_path, over TLS verified against the lab CA (the lab takes logins only over TLS):
curl and mbsync by STARTTLS on 1143, fetchmail by STARTTLS/STLS, mutt on IMAPS 1993.  `require_tool` skips a test when its tool is missing, except under
CI=true, where .ci/run has installed them all.  (curl's pop3:// is covered in
test_pop3_server.py.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from conftest import async_wait_for
from netutil import require_tool
from test_imap_server import USER, deliver

pytestmark = pytest.mark.interop


def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, timeout=timeout, env=env)


# ---- curl (imap://) ----------------------------------------------------------------------

def lab_ca(lab) -> Path:
    return lab.state.tls_dir / "ca.pem"


def curl(lab, *args: str) -> bytes:
    done = run(require_tool("curl"), "-s", "-S", "--max-time", "20", "--ssl-reqd", "--cacert", str(lab_ca(lab)),
               "-u", f"{USER}:maillab", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_curl_lists_fetches_searches_and_uploads(lab, tmp_path):
    require_tool("curl")
    await deliver(lab, 2)
    base = f"imap://127.0.0.1:{lab.ports.imap}"
    listing = await asyncio.to_thread(curl, lab, base + "/")
    assert b'* LIST (\\HasNoChildren \\Sent) "." "Sent"' in listing and b'"INBOX"' in listing
    message = await asyncio.to_thread(curl, lab, base + "/INBOX;UID=2")
    assert message.startswith(b"Return-Path: <santa@northpole.org>") and b"Subject: note 2" in message
    assert await asyncio.to_thread(curl, lab, base + "/INBOX?SUBJECT%20%22note%201%22") == b"* SEARCH 1\r\n"
    text = await asyncio.to_thread(curl, lab, base + "/INBOX;UID=1;SECTION=TEXT")
    assert text == b"Ho ho ho, number 1.\r\n"
    upload = tmp_path / "draft.eml"
    upload.write_bytes(b"Subject: drafted with curl\r\n\r\nnot sent yet\r\n")
    await asyncio.to_thread(curl, lab, "-T", str(upload), base + "/Drafts")
    drafts = lab.ctx.store.user(USER).folder("Drafts")
    assert [drafts.read(m.uid, crlf=True) for m in drafts.messages()] == [upload.read_bytes()]
    examine = await asyncio.to_thread(curl, lab, base + "/INBOX", "-X", "EXAMINE INBOX")
    assert b"* 2 EXISTS" in examine and b"[READ-ONLY]" not in examine    # curl prints the untagged part


# ---- mbsync: a folder tree synchronised both ways ---------------------------------------

MBSYNCRC = """\
IMAPAccount lab
Host localhost
Port {port}
User {user}
Pass maillab
SSLType STARTTLS
CertificateFile {ca}
AuthMechs LOGIN

IMAPStore lab-remote
Account lab

MaildirStore lab-local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel lab
Far :lab-remote:
Near :lab-local:
Patterns *
Create Both
Expunge Both
SyncState *
"""


def local_messages(folder: Path) -> list[Path]:
    return sorted(p for sub in ("cur", "new") for p in (folder / sub).iterdir())


async def test_mbsync_syncs_a_folder_tree_both_ways(lab, tmp_path):
    mbsync = require_tool("mbsync")
    await deliver(lab, 3)
    user = lab.ctx.store.user(USER)
    await asyncio.to_thread(user.create, "Lists.Python")
    user.folder("Lists.Python").append(b"Subject: on the list\r\n\r\nimport this\r\n")
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(MBSYNCRC.format(port=lab.ports.imap, user=USER, local=local, ca=lab_ca(lab)))

    def sync() -> None:
        done = run(mbsync, "-c", str(rc), "lab")
        assert done.returncode == 0, done.stderr.decode()

    await asyncio.to_thread(sync)                     # down: the whole tree
    assert len(local_messages(local / "INBOX")) == 3
    assert len(local_messages(local / "Lists" / "Python")) == 1
    assert {p.name for p in local.iterdir()} >= {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Lists"}

    # up: a new local folder with a message, a message read locally, one deleted locally
    new_box = local / "Projects" / "Lab"
    for sub in ("cur", "new", "tmp"):
        (new_box / sub).mkdir(parents=True)
    (new_box / "new" / "1700000000.1.laptop").write_bytes(b"From: mafudge@syr.edu\nSubject: pushed up\n\nhi\n")
    first, second = local_messages(local / "INBOX")[:2]
    first.rename(local / "INBOX" / "cur" / (first.name + "S"))      # mbsync's names end in ":2,"
    second.unlink()
    await asyncio.sleep(1)                            # mbsync distrusts Maildir changes in the same second
    await asyncio.to_thread(sync)

    assert user.exists("Projects.Lab")
    [pushed] = user.folder("Projects.Lab").messages()
    assert b"Subject: pushed up" in user.folder("Projects.Lab").read(pushed.uid)
    inbox = user.folder("INBOX")
    inbox.refresh()
    assert [sorted(m.flags) for m in inbox.messages()] == [["\\Seen"], []]

    # and down again: a change on the server reaches the laptop
    inbox.store([inbox.messages()[1].uid], ["\\Flagged"], "add")
    await asyncio.to_thread(sync)
    assert sorted(p.name.rpartition(",")[2] for p in local_messages(local / "INBOX")) == ["F", "S"]


# ---- fetchmail: IMAP and POP3 -----------------------------------------------------------

FETCHMAILRC = """\
set no syslog
poll localhost service {port} protocol {protocol} auth password timeout 20
  user "{user}" there password "maillab" is "{local}" here
  keep fetchall sslproto 'tls1.2+' sslcertck sslcertfile "{ca}"
  mda "/bin/sh -c 'cat >> {out}; echo ==== >> {out}'"
"""


@pytest.mark.parametrize("protocol", ["IMAP", "POP3"])
async def test_fetchmail_retrieves_over_imap_and_pop3(lab, tmp_path, protocol):
    fetchmail = require_tool("fetchmail")
    await deliver(lab, 2)
    out = tmp_path / "fetched"
    rc = tmp_path / "fetchmailrc"
    port = lab.ports.imap if protocol == "IMAP" else lab.ports.pop3
    rc.write_text(FETCHMAILRC.format(port=port, protocol=protocol, user=USER, local=os.environ.get("USER", "me"),
                                     out=out, ca=lab_ca(lab)))
    rc.chmod(0o600)
    env = {**os.environ, "HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path)}
    done = await asyncio.to_thread(run, fetchmail, "-f", str(rc), "--nodetach", env=env)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    fetched = out.read_bytes()
    assert fetched.count(b"====") == 2
    assert b"Subject: note 1" in fetched and b"Subject: note 2" in fetched
    assert lab.ctx.store.user(USER).folder("INBOX").exists == 2         # "keep"


# ---- mutt, in tmux, as a person would use it -------------------------------------------------

MUTTRC = """\
set imap_user="{user}"
set imap_pass="maillab"
set folder="imaps://localhost:{port}/"
set spoolfile="+INBOX"
set ssl_force_tls=yes
set ssl_ca_certificates_file="{ca}"
set header_cache=""
set message_cachedir=""
set mail_check=1
set timeout=1
"""


class Tmux:
    """A tmux server of our own (-L), so the test touches no other tmux session."""

    def __init__(self, tmux: str, name: str, env: dict[str, str]) -> None:
        self.tmux, self.name, self.env = tmux, name, env

    def __call__(self, *args: str) -> str:
        done = run(self.tmux, "-L", self.name, *args, env=self.env, timeout=10)
        return done.stdout.decode("utf-8", "replace")

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.name)


async def test_mutt_opens_the_mailbox_in_tmux_and_sees_new_mail(lab, tmp_path):
    mutt, tmux_path = require_tool("mutt"), require_tool("tmux")
    await deliver(lab, 1)
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(MUTTRC.format(user=USER, port=lab.ports.imaps, ca=lab_ca(lab)))
    env = {**os.environ, "HOME": str(tmp_path), "TERM": "xterm"}
    tmux = Tmux(tmux_path, f"maillab-{os.getpid()}-{lab.ports.offset}", env)
    await asyncio.to_thread(tmux, "new-session", "-d", "-s", tmux.name, "-x", "150", "-y", "40",
                            f"{mutt} -n -F {muttrc}")
    try:
        assert await async_wait_for(lambda: "note 1" in tmux.screen(), timeout=20,
                                    what=lambda: f"note 1 in:\n{tmux.screen()}")
        await deliver(lab, 1, start=2)
        assert await async_wait_for(lambda: "note 2" in tmux.screen(), timeout=20,
                                    what=lambda: f"note 2 in:\n{tmux.screen()}")
        await asyncio.to_thread(tmux, "send-keys", "-t", tmux.name, "Enter")        # open the first message
        assert await async_wait_for(lambda: "Ho ho ho, number 1." in tmux.screen(), timeout=10,
                                    what=lambda: f"the first message in:\n{tmux.screen()}")
    finally:
        await asyncio.to_thread(tmux, "kill-server")
