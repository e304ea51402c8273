"""README's curl rows for sending (submission over STARTTLS with --ssl-reqd, and SMTPS on
2465), verified against the lab CA: the mail arrives stamped ESMTPSA with the cipher."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from conftest import async_wait_for, maildir_messages
from netutil import require_tool

MESSAGE = b"From: <mafudge@syr.edu>\r\nTo: <tajorgen@syr.edu>\r\nSubject: by curl\r\n\r\nhi\r\n"


def curl_send(ca: str, url: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_tool("curl"), "-sS", "--cacert", ca, *extra, "-u", "mafudge@syr.edu:maillab",
                           url, "--mail-from", "mafudge@syr.edu", "--mail-rcpt", "tajorgen@syr.edu", "-T", "-"],
                          input=MESSAGE, capture_output=True, timeout=30)


@pytest.mark.parametrize("scheme,port,extra", [("smtp", "submission", ("--ssl-reqd",)), ("smtps", "smtps", ())])
async def test_curl_sends_over_tls_to_submission(lab, scheme, port, extra):
    ca = str(lab.state.tls_dir / "ca.pem")
    out = await asyncio.to_thread(curl_send, ca, f"{scheme}://localhost:{getattr(lab.ports, port)}", *extra)
    assert out.returncode == 0, out.stderr.decode()
    [msg] = await async_wait_for(lambda: maildir_messages(lab.state.root, "tajorgen@syr.edu"))
    assert msg["Subject"] == "by curl"
    assert "with ESMTPSA" in msg["Received"] and "(using TLSv1.3 with cipher TLS_" in msg["Received"]
