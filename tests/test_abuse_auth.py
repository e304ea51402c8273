"""A password check never runs on the shared loop: while one SMTP AUTH is being
checked, another client still gets its banner (issue 13, "never one connection
against everyone")."""

from __future__ import annotations

import asyncio
import smtplib
import threading

import pytest

from maillab.lab.directory import Directory

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)


async def test_smtp_auth_check_runs_off_the_loop(lab, monkeypatch):
    checking = threading.Event()
    release = threading.Event()
    real = Directory.authenticate

    def slow_authenticate(self, login, password, local_domains=()):
        checking.set()
        # Held until the second client has had its banner: on the loop this waits in vain.
        if not release.wait(15):
            raise AssertionError("the second client's banner never came while a login was checked")
        return real(self, login, password, local_domains)

    monkeypatch.setattr(Directory, "authenticate", slow_authenticate)

    def bad_login() -> int:
        with smtplib.SMTP("127.0.0.1", lab.ports.submission, timeout=30) as s:
            s.ehlo("mua.example")
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                s.login("mafudge@syr.edu", "wrong")
            return e.value.smtp_code

    def banner_during_check() -> bytes:
        if not checking.wait(15):
            raise AssertionError("the login check never started")
        try:
            with smtplib.SMTP("127.0.0.2", lab.ports.smtp, timeout=10) as s:
                return s.ehlo("other.example")[1]
        finally:
            release.set()

    code, other = await asyncio.gather(asyncio.to_thread(bad_login), asyncio.to_thread(banner_during_check))
    assert code == 535
    assert other
