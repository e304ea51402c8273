"""The overload valve: new SMTP sessions wait at a closed gate; a late loop closes it."""

from __future__ import annotations

import asyncio
import socket
import time

from conftest import async_wait_for, stays_false
from maillab.base.events import SessionClosed, SessionOpened
from maillab.net.admission import Admission, LagValve


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
    await async_wait_for(lambda: gate.waited == 6, what="6 sessions at the gate")
    assert entered == []
    gate.open(2)
    await async_wait_for(lambda: len(entered) == 2, what="the batch of 2 in")
    assert entered == [0, 1]                       # first come, first served
    late = asyncio.ensure_future(session(99))      # the gate is open, but others wait: queue behind
    await async_wait_for(lambda: gate.waited == 7, what="the late session at the gate")
    await stays_false(lambda: entered != [0, 1], 0.1, what="a session past the batch of 2")
    gate.open()
    await asyncio.gather(*tasks, late)
    assert entered == [0, 1, 2, 3, 4, 5, 99]


async def test_a_session_cancelled_while_waiting_leaves_the_queue():
    gate = Admission()
    gate.close()
    task = asyncio.ensure_future(gate.enter())
    await async_wait_for(lambda: gate.waited == 1, what="the session at the gate")
    task.cancel()
    await async_wait_for(task.done, what="the cancel to end the wait")
    gate.open(1)
    await asyncio.wait_for(gate.enter(), 0.1)      # the cancelled one took no place


class RecordingGate(Admission):
    """A gate that notes, in order, each change of state with the loop time it happened at."""

    def __init__(self) -> None:
        super().__init__()
        self.changes: list[tuple[str, float]] = []
        self.changed = asyncio.Event()

    def close(self) -> None:
        if not self.closed:
            self.changes.append(("close", asyncio.get_running_loop().time()))
            self.changed.set()
        super().close()

    def open(self, batch: int | None = None) -> None:
        if self.closed:
            self.changes.append(("open", asyncio.get_running_loop().time()))
            self.changed.set()
        super().open(batch)

    async def wait_for(self, wanted: list[str], timeout: float = 5.0) -> None:
        """Until the changes so far are `wanted` (AssertionError after `timeout`)."""
        async def seen() -> None:
            while [kind for kind, _ in self.changes] != wanted:
                self.changed.clear()
                await self.changed.wait()
        try:
            await asyncio.wait_for(seen(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"gate changes {self.changes}, wanted {wanted}") from None


async def test_a_late_loop_closes_the_valve_and_a_quiet_one_reopens_it():
    gate = RecordingGate()
    valve = LagValve(gate, period=0.01, high=0.02, low=0.008)
    lags: list[float] = []
    tick = valve._tick

    def noted_tick() -> None:          # the lag each tick judged by, in order
        tick()
        lags.append(valve.lag)
    valve._tick = noted_tick           # type: ignore[method-assign]
    valve.start()
    try:
        time.sleep(0.06)                           # the loop is stuck in a callback for 60 ms
        await gate.wait_for(["close", "open"])     # closed by the late tick, reopened when quiet
        assert lags[0] > valve.high                # the first tick came about 50 ms late
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
        await async_wait_for(lambda: gate.waited == 1, what="the client at the gate")
        await stays_false(banner.done, 0.3, what="a banner while the gate is closed")   # connected, no 220
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
        await async_wait_for(lambda: gate.waited == 1, what="the quitter accepted, waiting at the gate")
        quitter.close()
        limits = lab.ctx.admission.limits
        await async_wait_for(lambda: limits.count("smtp1.syr.edu", "smtp", "127.0.0.1") == 0,
                             what="the server to see the quitter's close")
        gate.open()
        assert (await asyncio.to_thread(_banner, "127.0.0.1", lab.ports.smtp)).startswith(b"220")
        seen: list[object] = []

        def closed() -> bool:
            seen.extend(sub.drain())
            return any(isinstance(e, SessionClosed) for e in seen)
        await async_wait_for(closed, what="the second client's session to close")
        kinds = [type(e).__name__ for e in seen]
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
    gate = RecordingGate()
    valve = LagValve(gate, period=0.01, high=0.5, low=0.4)      # any lag counts as quiet here
    valve.start()
    try:
        held_at = asyncio.get_running_loop().time()
        valve.hold(0.15)
        await gate.wait_for(["close", "open"])
        assert gate.changes[1][1] >= held_at + 0.15             # quiet, but held until then
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
