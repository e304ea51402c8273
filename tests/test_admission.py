"""The overload valve: new SMTP sessions wait at a closed gate; a late loop closes it."""

from __future__ import annotations

import asyncio
import socket
import time

from maillab.admission import Admission, LagValve
from maillab.events import SessionClosed, SessionOpened


async def test_an_open_gate_lets_sessions_in_at_once():
    gate = Admission()
    await asyncio.wait_for(gate.enter(), 0.1)
    assert gate.waited == 0


async def test_a_closed_gate_holds_sessions_and_lets_them_in_a_few_at_a_time():
    gate = Admission()
    gate.close()
    entered: list[int] = []

    async def session(n: int) -> None:
        await gate.enter()
        entered.append(n)

    tasks = [asyncio.ensure_future(session(n)) for n in range(6)]
    await asyncio.sleep(0.01)
    assert entered == [] and gate.waited == 6
    gate.open(2)
    await asyncio.sleep(0.01)
    assert entered == [0, 1]                       # first come, first served
    late = asyncio.ensure_future(session(99))      # the gate is open, but others wait: queue behind
    await asyncio.sleep(0.01)
    assert entered == [0, 1]
    gate.open()
    await asyncio.gather(*tasks, late)
    assert entered == [0, 1, 2, 3, 4, 5, 99]


async def test_a_session_cancelled_while_waiting_leaves_the_queue():
    gate = Admission()
    gate.close()
    task = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    gate.open(1)
    await asyncio.wait_for(gate.enter(), 0.1)      # the cancelled one took no place


async def test_a_late_loop_closes_the_valve_and_a_quiet_one_reopens_it():
    gate = Admission()
    valve = LagValve(gate, period=0.01, high=0.02, low=0.008)
    valve.start()
    try:
        await asyncio.sleep(0.03)
        time.sleep(0.06)                           # the loop is stuck in a callback for 60 ms
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        assert gate.closed and valve.lag > 0.02
        deadline = time.monotonic() + 5
        while gate.closed and time.monotonic() < deadline:   # quiet again: it reopens
            await asyncio.sleep(0.01)
        assert not gate.closed
    finally:
        valve.stop()


def _banner(address: str, port: int) -> bytes:
    with socket.create_connection((address, port), timeout=10) as s:
        return s.makefile("rb").readline()


async def test_a_client_gets_its_banner_only_when_the_gate_opens(lab):
    gate = lab.ctx.admission
    gate.close()
    try:
        banner = asyncio.ensure_future(asyncio.to_thread(_banner, "127.0.0.1", lab.ports.smtp))
        await asyncio.sleep(0.3)
        assert not banner.done()                   # connected, but no 220 yet
        gate.open()
        assert (await asyncio.wait_for(banner, 10)).startswith(b"220 smtp1.syr.edu ESMTP")
    finally:
        gate.open()


async def test_a_client_that_gives_up_at_the_gate_opened_no_session_and_closes_none(lab):
    sub = lab.bus.subscribe(kinds=(SessionOpened, SessionClosed))
    gate = lab.ctx.admission
    gate.close()
    try:
        quitter = socket.create_connection(("127.0.0.1", lab.ports.smtp), timeout=10)
        await asyncio.sleep(0.2)                       # accepted, waiting at the gate
        quitter.close()
        await asyncio.sleep(0.2)
        gate.open()
        assert (await asyncio.to_thread(_banner, "127.0.0.1", lab.ports.smtp)).startswith(b"220")
        await asyncio.sleep(0.2)
        kinds = [type(e).__name__ for e in sub.drain()]
        assert kinds == ["SessionOpened", "SessionClosed"]   # the second client's; none for the quitter
    finally:
        gate.open()
        sub.close()


async def test_a_loop_neither_late_nor_quiet_still_lets_sessions_in_one_by_one():
    gate = Admission()
    gate.close()
    valve = LagValve(gate, period=0.01, high=10.0, low=-1.0)  # every tick falls in between
    entered = []

    async def session(n: int) -> None:
        await gate.enter()
        entered.append(n)

    tasks = [asyncio.ensure_future(session(n)) for n in range(3)]
    valve.start()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert entered == [0, 1, 2] and gate.closed
    finally:
        valve.stop()
    valve.hold(1.0)                                    # stopped: a late key press changes nothing
    assert not gate.closed


async def test_hold_keeps_the_gate_shut_for_a_moment_even_on_a_quiet_loop():
    gate = Admission()
    valve = LagValve(gate, period=0.01, high=0.5, low=0.4)      # any lag counts as quiet here
    valve.start()
    try:
        valve.hold(0.15)
        await asyncio.sleep(0.08)
        assert gate.closed                                       # quiet, but held
        deadline = time.monotonic() + 5
        while gate.closed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not gate.closed
    finally:
        valve.stop()


async def test_a_key_press_in_the_tui_holds_new_sessions_back(tmp_path):
    from test_tui_support import running_app

    async with running_app(tmp_path) as (app, pilot):
        valve = app._valve
        before = valve.holds
        await pilot.press("2")
        assert valve.holds == before + 1                         # the gate was shut for KEY_HOLD seconds
        await pilot.press("3", "4")
        assert valve.holds == before + 3
