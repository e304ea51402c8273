"""The event loop the lab runs on: uvloop's (libuv, in C), for `maillab serve`, the TUI and the tests.

The engine is many small callbacks per message (accept, a PTR look-up over
UDP, six SMTP replies, timers, thread hand-overs), and most of a loop turn's
cost was asyncio's own Python: the selector, handles, timers, transports.
uvloop runs those in C.  Measured with one connection per 1 KB message at
300 msg/s, the main thread's CPU per message fell from 2.07 ms to 1.41 ms
(bench/README.md), and that is the margin a key press needs in a flood.
"""

from __future__ import annotations

import asyncio

import uvloop


def new_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop()


def runner() -> asyncio.Runner:
    """An `asyncio.Runner` on a new lab loop (close it, or use it as a context manager)."""
    return asyncio.Runner(loop_factory=new_loop)
