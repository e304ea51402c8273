"""The outbound SMTP client: its protocol work alone, and whole hops beside smtplib.

    python3 bench/client.py [--hops N]

Prints (1) transactions per second of `ClientConnection` fed scripted replies
(no sockets: the cost of the protocol itself, 1 KB message, 1 recipient);
(2) the protocol time and peak traced memory of one 10 MB message (its
CRLF check, dot-stuffing and output: the memory bound is one stuffed copy);
(3) hops per second of `send_hop` to a do-nothing aiosmtpd on loopback, and of
the standard library's smtplib doing the same transaction to the same server
in the same run (in a thread, one connection per message like the hop).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import tracemalloc

# Run as `python3 bench/client.py`, bench/ is sys.path[0]: bench/queue.py would shadow the queue module.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))          # the project, when not installed

import smtplib  # noqa: E402

from aiosmtpd.smtp import SMTP  # noqa: E402

from maillab.base import eventloop  # noqa: E402
from maillab.base.clock import Clock  # noqa: E402
from maillab.base.events import EventBus  # noqa: E402
from maillab.smtp.client import send_hop  # noqa: E402
from maillab.smtp.client_protocol import ClientConnection, Envelope, Rcpt  # noqa: E402

REPLIES = (b"220 sink ESMTP\r\n", b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n",
           b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n", b"354 go ahead\r\n", b"250 2.0.0 Ok: queued as X\r\n",
           b"221 2.0.0 Bye\r\n")
SMALL = b"Subject: bench\r\n\r\n" + (b"x" * 70 + b"\r\n") * 14      # about 1 KB


def transaction(message: bytes) -> int:
    conn = ClientConnection("bench.test", Envelope("a@bench.test", (Rcpt("b@bench.test"),)), message)
    sent = len(conn.data_to_send())
    for chunk in REPLIES:
        conn.receive_data(chunk)
        sent += len(conn.data_to_send())
        conn.transcript()
    assert conn.result.accepted == ["b@bench.test"]
    return sent


def protocol_figures() -> None:
    n, start = 5000, time.perf_counter()
    for _ in range(n):
        transaction(SMALL)
    print(f"protocol alone, 1 KB:      {n / (time.perf_counter() - start):8.0f} transactions/s")
    big = (b"Subject: big\r\n\r\n" + (b".0123456789" * 7 + b"\r\n") * 130_000)
    start = time.perf_counter()
    tracemalloc.start()
    transaction(big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"protocol alone, {len(big) / 1e6:.0f} MB:     {(time.perf_counter() - start) * 1000:8.1f} ms, "
          f"peak {peak / 1e6:.1f} MB traced")


class Sink:
    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        return "250 2.0.0 Ok: queued as X"


async def hop_figures(hops: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink(), hostname="sink.test"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bus, clock = EventBus(), Clock()
    start = time.perf_counter()
    for i in range(hops):
        result = await send_hop(helo="bench.test", source_ip=None, dest_ip="127.0.0.1", dest_port=port,
                                sender="a@bench.test", recipients=["b@bench.test"], message=SMALL,
                                bus=bus, clock=clock, session=f"bench/{i}", host="bench.test")
        assert result.accepted, result
    ours = hops / (time.perf_counter() - start)

    def stdlib() -> float:
        begin = time.perf_counter()
        for _ in range(hops):
            with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.test") as s:
                s.sendmail("a@bench.test", ["b@bench.test"], SMALL)
        return hops / (time.perf_counter() - begin)

    theirs = await asyncio.to_thread(stdlib)
    server.close()
    await server.wait_closed()
    print(f"hops to aiosmtpd, 1 KB:    {ours:8.0f} /s send_hop   {theirs:8.0f} /s smtplib (same run, "
          f"{ours / theirs:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", type=int, default=500)
    args = parser.parse_args()
    protocol_figures()
    eventloop.new_loop().run_until_complete(hop_figures(args.hops))


if __name__ == "__main__":
    main()
