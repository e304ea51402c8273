"""aiosmtpd's per-connection introspection, memoized per class, finds what the real one finds."""

from __future__ import annotations

import builtins
import inspect

import aiosmtpd.smtp
from aiosmtpd.smtp import SMTP

from maillab.smtp import introspection
from maillab.smtp.server import LabSMTP, MtaHandler


def _found(server: SMTP) -> tuple:
    return ({name: (impl.method.__func__, impl.is_builtin) for name, impl in server._auth_methods.items()},
            {name: hook.__func__ for name, hook in server._handle_hooks.items()},
            {name: method.__func__ for name, method in server._smtp_methods.items()},
            server._ehlo_hook_ver)


async def test_memoized_introspection_finds_the_same_commands_hooks_and_mechanisms(lab, monkeypatch):
    mta = lab.mta("smtp1.syr.edu")
    introspection.install()
    memoized = [_found(LabSMTP(mta, service)) for service in ("smtp", "submission")]
    monkeypatch.setattr(aiosmtpd.smtp, "inspect", inspect)
    monkeypatch.setattr(aiosmtpd.smtp, "dir", builtins.dir)
    real = [_found(LabSMTP(mta, service)) for service in ("smtp", "submission")]
    assert memoized == real
    assert {"PLAIN", "LOGIN"} <= set(real[1][0]) and "DATA" in real[0][2] and "EHLO" in real[0][1]
    assert real[0][3] == "new"


async def test_a_second_connection_reuses_the_first_ones_findings(lab):
    introspection.install()
    memo = aiosmtpd.smtp.inspect
    mta = lab.mta("smtp1.syr.edu")
    LabSMTP(mta, "smtp")
    before = dict(memo._dirs), dict(memo._methods)
    LabSMTP(mta, "smtp")
    assert (dict(memo._dirs), dict(memo._methods)) == before
    assert LabSMTP in memo._dirs and MtaHandler in memo._dirs
