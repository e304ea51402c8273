"""STARTTLS stripping (`maillab hosts strip HOST`): the host stops offering STARTTLS, live, as a
man in the middle who cuts it from EHLO makes it look; `unstrip` offers it again."""

from __future__ import annotations

import smtplib
import subprocess
import sys

from conftest import wait_for


def cli(lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maillab", *args, "--state", str(lab.state)],
                          capture_output=True, text=True, timeout=60)


def ehlo_and_starttls(address: str, port: int) -> tuple[list[str], tuple[int, bytes]]:
    """The EHLO keywords of a new session, and the reply to STARTTLS (without going on into TLS
    when it is a 220: the session is dropped)."""
    s = smtplib.SMTP(address, port, timeout=10)
    try:
        s.ehlo("northpole.org")
        keywords = [line.split()[0].upper() for line in s.ehlo_resp.decode().splitlines()[1:]]
        return keywords, s.docmd("STARTTLS")
    finally:
        s.close()


def test_strip_and_unstrip_against_a_running_lab(served):
    lab = served()
    keywords, reply = ehlo_and_starttls("127.0.0.1", lab.ports.smtp)
    assert "STARTTLS" in keywords and reply[0] == 220
    open_before = smtplib.SMTP("127.0.0.1", lab.ports.submission, timeout=10)    # opened before the strip
    r = cli(lab, "hosts", "strip", "smtp1.syr.edu")
    assert r.returncode == 0 and r.stdout.strip() == "smtp1.syr.edu: STARTTLS stripped"
    row = next(line for line in cli(lab, "hosts").stdout.splitlines() if line.startswith("smtp1.syr.edu"))
    assert "STARTTLS stripped" in row
    for port in (lab.ports.smtp, lab.ports.submission):
        keywords, reply = ehlo_and_starttls("127.0.0.1", port)
        assert "STARTTLS" not in keywords and "SIZE" in keywords
        assert reply == (502, b"5.5.1 Error: command not implemented")
    open_before.ehlo("northpole.org")
    assert open_before.has_extn("starttls")         # a session keeps what it began with
    open_before.close()
    assert "STARTTLS" in ehlo_and_starttls("127.0.0.2", lab.ports.smtp)[0]      # other hosts untouched
    assert wait_for(lambda: "smtp1.syr.edu maillab/smtpd" in lab.output() and
                    "STARTTLS stripped: the EHLO reply no longer offers it" in lab.output())
    assert cli(lab, "hosts", "unstrip", "smtp1.syr.edu").stdout.strip() == "smtp1.syr.edu: STARTTLS offered"
    keywords, reply = ehlo_and_starttls("127.0.0.1", lab.ports.smtp)
    assert "STARTTLS" in keywords and reply[0] == 220
    assert wait_for(lambda: "STARTTLS offered again in the EHLO reply" in lab.output())


def test_strip_needs_a_known_host(served):
    lab = served()
    r = cli(lab, "hosts", "strip", "nowhere.example")
    assert r.returncode != 0 and r.stderr.strip().endswith("no host nowhere.example in this world (try: maillab hosts)")
    r = cli(lab, "hosts", "strip")
    assert r.returncode != 0 and "hosts strip needs a host name" in r.stderr
