"""swaks, the tool admins reach for, against a running `maillab serve`."""

from __future__ import annotations

import subprocess

import pytest

from conftest import maildir_messages, wait_for
from netutil import require_tool

pytestmark = pytest.mark.interop


def swaks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("swaks"), *args], capture_output=True, text=True, timeout=60)


def test_swaks_to_the_mx_port_delivers(served):
    lab = served()
    r = swaks("--server", f"127.0.0.1:{lab.ports.smtp}", "--from", "santa@northpole.org",
              "--to", "mafudge@syr.edu", "--header", "Subject: swaks test", "--body", "ho ho ho")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<-  250 2.0.0 Ok: queued as " in r.stdout
    msgs = wait_for(lambda: maildir_messages(lab.state, "mafudge@syr.edu"))
    assert msgs[0]["Subject"] == "swaks test"


def test_swaks_pipelining_and_auth_on_submission_relays(served):
    lab = served()
    r = swaks("--server", f"127.0.0.4:{lab.ports.submission}", "--pipeline", "--tls", "--tls-verify",
              "--tls-ca-path", str(lab.state / "tls" / "ca.pem"), "--auth", "LOGIN", "--auth-user", "michael.fudge@gmail.com", "--auth-password", "maillab",
              "--from", "michael.fudge@gmail.com", "--to", "relstad@syr.edu",
              "--header", "Subject: from gmail")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0 Authentication successful" in r.stdout
    msgs = wait_for(lambda: maildir_messages(lab.state, "relstad@syr.edu"))
    received = msgs[0].get_all("Received")
    assert "by mx.gmail.com (maillab) with ESMTPSA" in received[1]
    assert "from mx.gmail.com (mx.gmail.com [127.0.0.4])" in received[0]


def test_swaks_relay_without_auth_is_denied(served):
    lab = served()
    r = swaks("--server", f"127.0.0.66:{lab.ports.smtp}", "--from", "promo@cheap-pills.biz",
              "--to", "victim@gmail.com")
    assert r.returncode != 0
    assert "554 5.7.1 <victim@gmail.com>: Relay access denied" in r.stdout
