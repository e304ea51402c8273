"""A message made by the built-in MUA, read by a real third-party client: neomutt in tmux.

Santa's message is built by `maillab.mua.compose` (a UTF-8 subject with non-ASCII, a UTF-8
body, a binary attachment with a non-ASCII name: RFC 2047 and RFC 2231 on the wire), submitted
by `maillab.mua.submit` to mail.northpole.org's submission port (STARTTLS verified against the
lab CA, then AUTH), relayed to smtp1.syr.edu and delivered to mafudge's INBOX Maildir.  There
the delivered file must hold the built octets unchanged after the header fields the hops
prepend, and Python's email parser must decode the subject, the file name and the payload
exactly.  Then neomutt logs in over IMAP with STARTTLS (the lab CA and nothing else trusted),
its index must show the decoded subject, and the attachment it saves must be the original
bytes.  `require_tool` skips without neomutt or tmux, except under CI=true, where it fails.
"""

from __future__ import annotations

import asyncio
import email.policy
import os
import shlex
import subprocess
import time
from email.parser import BytesParser
from pathlib import Path

import pytest

from maillab.mua.compose import Attachment, Draft, build, envelope
from maillab.mua.identity import find
from maillab.mua.submit import EXIT_OK, Server, submit, verdict
from maillab.net.tls import client_context
from maillab.smtp.client_protocol import Credentials

from conftest import async_wait_for, wait_for
from netutil import require_tool

pytestmark = pytest.mark.interop

SUBJECT = "Grüße aus dem Norden ❄ — café"
BODY = "Lieber Professor Fudge,\n\nder Schlitten ist fertig — anbei die Übersicht.\nFröhliche Grüße ❄\n"
FILENAME = "Schlitten-Übersicht.bin"
PAYLOAD = bytes(range(256)) * 20

NEOMUTTRC = """\
set imap_user="{user}"
set imap_pass="{password}"
set folder="imap://{address}:{port}/"
set spoolfile="+INBOX"
set ssl_starttls=yes
set ssl_force_tls=yes
set ssl_verify_host=yes
set ssl_ca_certificates_file="{ca}"
set header_cache=""
set message_cachedir=""
set sidebar_visible=no
set record=""
set postponed=""
set charset="utf-8"
set mail_check=60
set timeout=1
set wait_key=no
set sort=date
"""


def inbox_files(state: Path, address: str) -> list[Path]:
    local, domain = address.split("@")
    root = state / "mail" / domain / local
    return sorted((p for sub in ("new", "cur") if (root / sub).is_dir() for p in (root / sub).iterdir()),
                  key=lambda p: p.name)


def read_delivered(state: Path, address: str) -> bytes | None:
    """The one delivered message's octets (None while there is none; the store may move it from
    new/ to cur/ while we read)."""
    for path in inbox_files(state, address):
        try:
            return path.read_bytes()
        except FileNotFoundError:
            continue
    return None


class Tmux:
    """A tmux server of our own (-L), so the test touches no other tmux session."""

    def __init__(self, tool: str, name: str, env: dict[str, str]) -> None:
        self.tool, self.name, self.env = tool, name, env

    def __call__(self, *args: str) -> str:
        done = subprocess.run([self.tool, "-u", "-L", self.name, *args], capture_output=True, env=self.env,
                              timeout=10)
        return done.stdout.decode("utf-8", "replace")

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def wait_screen(self, text: str, timeout: float = 10.0) -> str:
        return wait_for(lambda: (lambda s: s if text in s else "")(self.screen()), timeout,
                        what=lambda: f"{text!r} on neomutt's screen:\n{self.screen()}")


def neomutt_reads_and_saves(neomutt: str, tmux: Tmux, rc: Path, saved: Path) -> bytes:
    """Drive neomutt as a person would: the index, the message, its attachments, save one; the
    saved file's octets.  (Blocking: run it in a thread while the lab's loop keeps serving.)"""
    tmux("new-session", "-d", "-s", tmux.name, "-x", "200", "-y", "50",
         "-e", "LANG=C.UTF-8", "-e", "LC_ALL=C.UTF-8", f"{shlex.quote(neomutt)} -n -F {shlex.quote(str(rc))}")
    index = tmux.wait_screen(SUBJECT, 20)           # the index: the RFC 2047 subject decoded
    assert "Santa Claus" in index
    tmux.keys("Enter")                               # open the message in the pager
    tmux.wait_screen(BODY.splitlines()[2])
    tmux.keys("v")                                   # the attachment menu
    menu = tmux.wait_screen("base64")
    assert FILENAME in menu, menu                    # the RFC 2231 name decoded
    assert "[applica/octet-stre, base64" in menu, menu
    tmux.keys("j")                                   # entry 2: the attachment (1 is the text)
    tmux.keys("s")
    prompt = [line for line in tmux.wait_screen("Save to file:").splitlines() if "Save to file:" in line][0]
    assert prompt.rstrip().endswith(f"/{FILENAME}"), prompt   # it offers the decoded name (in its directory)
    tmux.keys("C-u")                                 # clear the offered name, type our path
    tmux.keys(str(saved), literal=True)
    tmux.keys("Enter")
    wait_for(lambda: saved.exists() and saved.stat().st_size >= len(PAYLOAD), 10,
             what=lambda: f"{saved} written; neomutt's screen:\n{tmux.screen()}")
    tmux.wait_screen("Attachment saved")
    return saved.read_bytes()


async def test_a_message_from_the_mua_round_trips_byte_exact_to_neomutt(lab, tmp_path):
    neomutt, tmux_tool = require_tool("neomutt"), require_tool("tmux")
    santa, mafudge = find(lab.world, "santa@northpole.org"), find(lab.world, "mafudge@syr.edu")
    ca = lab.state.tls_dir / "ca.pem"

    # 1. built by the MUA, submitted with STARTTLS + AUTH, delivered
    draft = Draft(sender=santa.from_header, to=(mafudge.from_header,), subject=SUBJECT, body=BODY,
                  attachments=(Attachment(FILENAME, PAYLOAD),))
    message = build(draft)
    sender, rcpts = envelope(draft)
    assert message.partition(b"\r\n\r\n")[0].isascii()  # header: RFC 2047 encoded-words (the text is 8-bit UTF-8)
    lines: list[str] = []
    result = await submit(Server(santa.host_address, lab.ports.submission, santa.host), sender, rcpts, message,
                          tls="starttls", context=client_context(ca), helo="sleigh.northpole.org",
                          credentials=Credentials(santa.address, santa.password),
                          on_line=lambda marker, text: lines.append(f"{marker} {text}"))
    outcome = verdict(result, rcpts)
    assert outcome.status == EXIT_OK, (outcome.line, lines)
    assert any(line.startswith(" ~> AUTH ") for line in lines), lines
    assert not any(line.startswith(" -> AUTH") for line in lines)     # the password went only under TLS

    delivered = await async_wait_for(lambda: read_delivered(lab.state.root, mafudge.address), 15,
                                     what="delivery to mafudge's INBOX Maildir")
    assert len(inbox_files(lab.state.root, mafudge.address)) == 1
    # the hops only prepend header fields: the built octets follow them unchanged (stored with LF)
    wire = delivered.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert wire.endswith(message), "the delivered message is not the built one after the prepended fields"
    prepended = wire[:-len(message)]
    assert prepended.endswith(b"\r\n") and b"\r\n\r\n" not in prepended

    # 2. Python's email parser on the delivered file
    parsed = BytesParser(policy=email.policy.default).parsebytes(delivered)
    assert parsed["Subject"] == SUBJECT
    assert parsed.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n") == BODY
    attached = list(parsed.iter_attachments())
    assert [a.get_filename() for a in attached] == [FILENAME]
    assert attached[0].get_content_type() == "application/octet-stream"
    assert attached[0].get_content() == PAYLOAD

    # 3. neomutt over IMAP with STARTTLS: the index, then the attachment saved
    rc = tmp_path / "neomuttrc"
    rc.write_text(NEOMUTTRC.format(user=mafudge.address, password=mafudge.password, address=mafudge.host_address,
                                   port=lab.ports.imap, ca=ca))
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env.update(HOME=str(tmp_path), LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="xterm-256color")
    tmux = Tmux(tmux_tool, f"maillab-neomutt-{os.getpid()}-{time.monotonic_ns()}", env)
    saved = tmp_path / "saved.bin"
    try:
        got = await asyncio.to_thread(neomutt_reads_and_saves, neomutt, tmux, rc, saved)
    finally:
        await asyncio.to_thread(tmux, "kill-server")
    assert got == PAYLOAD
