"""aiosmtpd's overhead, trimmed: introspection memoized per class finds what the real one finds, and
command lines are sanitized for its log only when that log is on (AUTH secrets still masked then)."""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import smtplib
from unittest import mock

import aiosmtpd.smtp
from aiosmtpd.smtp import SMTP

from maillab.smtp import overhead
from maillab.smtp.server import LabSMTP, MtaHandler


def _found(server: SMTP) -> tuple:
    return ({name: (impl.method.__func__, impl.is_builtin) for name, impl in server._auth_methods.items()},
            {name: hook.__func__ for name, hook in server._handle_hooks.items()},
            {name: method.__func__ for name, method in server._smtp_methods.items()},
            server._ehlo_hook_ver)


async def test_memoized_introspection_finds_the_same_commands_hooks_and_mechanisms(lab, monkeypatch):
    mta = lab.mta("smtp1.syr.edu")
    overhead.install()
    memoized = [_found(LabSMTP(mta, service)) for service in ("smtp", "submission")]
    monkeypatch.setattr(aiosmtpd.smtp, "inspect", inspect)
    monkeypatch.setattr(aiosmtpd.smtp, "dir", builtins.dir)
    real = [_found(LabSMTP(mta, service)) for service in ("smtp", "submission")]
    assert memoized == real
    assert {"PLAIN", "LOGIN"} <= set(real[1][0]) and "DATA" in real[0][2] and "EHLO" in real[0][1]
    assert real[0][3] == "new"


async def test_a_second_connection_reuses_the_first_ones_findings(lab):
    overhead.install()
    memo = aiosmtpd.smtp.inspect
    mta = lab.mta("smtp1.syr.edu")
    LabSMTP(mta, "smtp")
    before = dict(memo._dirs), dict(memo._methods)
    LabSMTP(mta, "smtp")
    assert (dict(memo._dirs), dict(memo._methods)) == before
    assert LabSMTP in memo._dirs and MtaHandler in memo._dirs


def _login(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.login("mafudge@syr.edu", "maillab")


async def test_command_lines_are_sanitized_for_the_log_only_when_it_is_on(lab):
    overhead.install()
    port = lab.ports.submission
    with mock.patch.object(overhead, "_sanitized_log", wraps=overhead._sanitized_log) as sanitized:
        await asyncio.to_thread(_login, port)               # mail.log is off (maillab.smtp.server)
        assert sanitized.call_count == 0
        logger = logging.getLogger("mail.log")
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append                       # type: ignore[method-assign]
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        try:
            await asyncio.to_thread(_login, port)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(logging.CRITICAL)
    assert sanitized.call_count > 0
    lines = [r.getMessage() for r in records if ">>" in r.getMessage()]
    assert any("AUTH PLAIN ********" in line for line in lines), lines
    assert not any("maillab" in line.partition(">>")[2] for line in lines), lines    # no password
