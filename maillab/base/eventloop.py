"""The event loop the lab runs on: uvloop's (libuv, in C), for `maillab serve`, the TUI and the tests.

The engine is many small callbacks per message (accept, a PTR look-up over
UDP, six SMTP replies, timers, thread hand-overs), and most of a loop turn's
cost was asyncio's own Python: the selector, handles, timers, transports.
uvloop runs those in C.  Measured with one connection per 1 KB message at
300 msg/s, the main thread's CPU per message fell from 2.07 ms to 1.41 ms
(bench/README.md), and that is the margin a key press needs in a flood.

A lab loop also starts with the soft RLIMIT_NOFILE raised to the hard limit
(capped at FILE_LIMIT_WANTED): at the common default of 1024, a thousand idle
connections left no descriptor to accept-and-refuse the next client with.
"""

from __future__ import annotations

import asyncio
import resource

import uvloop

FILE_LIMIT_WANTED = 65536


def raise_file_limit() -> None:
    """Raise the soft open-files limit as far as the hard one allows (up to FILE_LIMIT_WANTED)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FILE_LIMIT_WANTED if hard == resource.RLIM_INFINITY else min(hard, FILE_LIMIT_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def new_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop()


def runner() -> asyncio.Runner:
    """An `asyncio.Runner` on a new lab loop (close it, or use it as a context manager)."""
    raise_file_limit()
    return asyncio.Runner(loop_factory=new_loop)
