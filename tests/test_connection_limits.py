"""Connection limits over real sockets: per client address, per service, the descriptor reserve,
and the short idle time allowed before login (issue 13)."""

from __future__ import annotations

import asyncio
import imaplib
import resource

import pytest

from conftest import async_wait_for
from maillab.base.events import Notice

# not about TLS (tests/test_tls_servers.py): its clients log in over plaintext, as the world of
# the eavesdropping lesson allows
pytestmark = pytest.mark.world(auth_over_plaintext=True)

HOST = "127.0.0.1"          # smtp1.syr.edu: SMTP, IMAP and POP3
FLOOD = "127.0.0.9"         # a client address no lab host uses
USER, PASSWORD = "mafudge@syr.edu", "maillab"


async def connect(port: int, source: str = FLOOD) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A connection from `source` and the server's first line (b"" if it said nothing before closing)."""
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    first = await asyncio.wait_for(reader.readline(), 10)
    return reader, writer, first


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (fails loudly after 10 s)."""
    return await asyncio.wait_for(reader.read(), 10)


def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.close()


@pytest.mark.parametrize("service, reply", [
    ("smtp", b"421 4.7.0 Too many connections from IP\r\n"),
    ("imap", b"* BYE Too many connections from IP\r\n"),
    ("pop3", b"-ERR [SYS/TEMP] too many connections\r\n"),
])
async def test_past_the_per_client_limit_a_client_gets_a_clear_reply_and_a_log_line(lab, service, reply):
    lab.ctx.admission.limits.per_client = 3
    sub = lab.bus.subscribe(kinds=(Notice,))
    port = getattr(lab.ports, service)
    held = [await connect(port) for _ in range(3)]
    assert all(first[:1] in (b"2", b"*", b"+") and b"Too many" not in first for _, _, first in held)
    reader, writer, first = await connect(port)
    assert first == reply
    assert await closed_by_server(reader) == b""
    writer.close()
    warnings = [e.text for e in sub.drain() if "concurrency limit" in e.text]
    assert warnings == [f"warning: Connection concurrency limit exceeded: 3 from unknown[{FLOOD}] "
                        f"for service {service}"]
    # another address is not limited by this one's connections
    other = await connect(port, source="127.0.0.1")
    assert b"Too many" not in other[2] and not other[2].startswith(b"-ERR")
    # a connection that ends gives its place back
    held[0][1].close()
    await asyncio.wait_for(held[0][0].read(), 10)

    limits = lab.ctx.admission.limits
    await async_wait_for(lambda: limits.count("smtp1.syr.edu", service, FLOOD) == 2,
                         what=lambda: f"the place given back: {limits.count('smtp1.syr.edu', service, FLOOD)} held")
    again = await connect(port)
    assert b"Too many" not in again[2] and not again[2].startswith(b"-ERR")
    close_all([w for _, w, _ in held[1:]] + [other[1], again[1]])


async def test_past_the_service_total_smtp_says_421_and_logs_it(lab):
    lab.ctx.admission.limits.per_service = 2
    sub = lab.bus.subscribe(kinds=(Notice,))
    held = [await connect(lab.ports.smtp, source=f"127.0.0.{n}") for n in (9, 10)]
    reader, writer, first = await connect(lab.ports.smtp, source="127.0.0.11")
    assert first == b"421 4.3.2 smtp1.syr.edu Too many connections, try again later\r\n"
    assert [e.text for e in sub.drain() if "Too many connections to service" in e.text] == [
        "warning: Too many connections to service smtp; refused unknown[127.0.0.11]"]
    close_all([writer] + [w for _, w, _ in held])


async def test_the_descriptor_reserve_answers_instead_of_refusing_silently(lab):
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    limits = lab.ctx.admission.limits
    limits.fd_reserve = soft - limits._total - 2      # room for two more connections in the lab
    held = [await connect(lab.ports.imap, source=f"127.0.0.{n}") for n in (9, 10)]
    assert all(first.startswith(b"* OK") for _, _, first in held)
    reader, writer, first = await connect(lab.ports.imap, source="127.0.0.11")
    assert first.startswith(b"* BYE [UNAVAILABLE] Too many IMAP sessions")
    close_all([writer] + [w for _, w, _ in held])


async def test_a_user_logs_in_while_200_idle_unauthenticated_imap_connections_are_open(lab):
    limits = lab.ctx.admission.limits
    limits.per_client, limits.per_service = 50, 200
    idle = [await connect(lab.ports.imap) for _ in range(200)]
    assert sum(first.startswith(b"* OK") for _, _, first in idle) == 50
    assert sum(first == b"* BYE Too many connections from IP\r\n" for _, _, first in idle) == 150

    def login() -> tuple:
        m = imaplib.IMAP4(HOST, lab.ports.imap, timeout=10)
        try:
            return m.login(USER, PASSWORD), m.select("INBOX")
        finally:
            m.logout()
    (status, _), (selected, _) = await asyncio.to_thread(login)
    assert status == "OK" and selected == "OK"
    close_all([w for _, w, _ in idle])


@pytest.mark.parametrize("service", ["imap", "pop3"])
async def test_an_idle_client_that_has_not_logged_in_is_closed_after_the_short_timeout(lab, service):
    lab.ctx.admission.limits.preauth_timeout = 0.5        # the lab's session timeout is 30 s
    reader, writer, first = await connect(getattr(lab.ports, service))
    assert first.startswith(b"* OK" if service == "imap" else b"+OK")
    rest = await closed_by_server(reader)                 # within 10 s, not 30
    if service == "imap":
        assert rest == b"* BYE Autologout; idle for too long\r\n"
    writer.close()


async def test_a_logged_in_imap_client_keeps_the_long_timeout(lab):
    lab.ctx.admission.limits.preauth_timeout = 0.5
    reader, writer = await asyncio.open_connection(HOST, lab.ports.imap)
    await reader.readline()
    writer.write(f"a LOGIN {USER} {PASSWORD}\r\n".encode())
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"a OK")
    writer.write(b"b NOOP\r\n")
    await asyncio.wait_for(reader.readline(), 10)
    # past the pre-login timeout several times over: the session is still there
    await asyncio.sleep(1.5)
    writer.write(b"c NOOP\r\n")
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"c OK")
    writer.close()


async def test_the_labs_own_relaying_is_not_limited_by_default(lab):
    """Every lab host and client connects from 127.0.0.x: 100 at once from one address pass."""
    held = [await connect(lab.ports.smtp, source="127.0.0.2") for _ in range(100)]
    assert all(first.startswith(b"220 ") for _, _, first in held)
    close_all([w for _, w, _ in held])


def test_lab_toml_sets_the_limits(tmp_path):
    import shutil

    from maillab.net.admission import ConnectionLimits
    from maillab.lab.world import WorldError, load_world

    world_dir = tmp_path / "world"
    shutil.copytree(load_world().path, world_dir)
    toml = world_dir / "lab.toml"
    text = toml.read_text()
    toml.write_text(text.replace("[lab]\n", "[lab]\nconnections_per_client = 40\nconnections_per_service = 300\n"
                                            "preauth_timeout = 20\n", 1))
    limits = ConnectionLimits.of(load_world(world_dir))
    assert (limits.per_client, limits.per_service, limits.preauth_timeout) == (40, 300, 20)
    toml.write_text(text.replace("[lab]\n", "[lab]\nconnections_per_client = 0\n", 1))
    with pytest.raises(WorldError, match="connections_per_client = 0: expected a whole number of connections"):
        load_world(world_dir)


async def test_the_lab_applies_its_worlds_limits(lab):
    assert lab.ctx.admission.limits.per_client == lab.world.connections_per_client == 500
