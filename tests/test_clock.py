"""The lab clock across restarts: a jump ahead is kept, time never runs backwards, even
after a kill -9 at a fast speed; a damaged clock file is a clear error."""

from __future__ import annotations

import time

import pytest

from conftest import free_offset, wait_for
from maillab.base.clock import Clock, ClockError
from maillab.lab.state import StateDir
from maillab.lab.supervisor import Lab, LabError
from maillab.lab.world import load_world
from maillab.net.ports import Ports

DAY = 86400


def test_a_jump_ahead_is_kept_by_the_next_clock(tmp_path):
    path = tmp_path / "clock.json"
    first = Clock()
    first.persist(path)
    first.advance(3 * DAY)
    second = Clock()
    second.persist(path)
    assert second.now() >= time.time() + 3 * DAY - 1


def test_time_never_runs_backwards_after_a_crash_at_high_speed(tmp_path):
    path = tmp_path / "clock.json"
    fast = Clock(speed=3600)                  # an hour of lab time a second
    fast.persist(path)                        # saved once; then never again ("kill -9")
    wait_for(lambda: fast.now() >= time.time() + 60, 5, 0.005, what="the fast clock to run a lab minute ahead")
    last_stamp = fast.now()
    again = Clock()                           # restarted at normal speed
    again.persist(path)
    assert again.now() >= last_stamp
    assert again.speed == 1.0                 # the speed is this run's option


def test_a_damaged_clock_file_is_a_clear_error(tmp_path):
    path = tmp_path / "clock.json"
    path.write_text("{half")
    with pytest.raises(ClockError, match="unreadable lab clock"):
        Clock().persist(path)


async def start_lab(state: StateDir) -> Lab:
    for _ in range(5):
        lab = Lab(world=load_world(), state=state, ports=Ports(free_offset()), clock=Clock(),
                  session_timeout=30)
        try:
            await lab.start()
            return lab
        except LabError:
            continue
    pytest.fail("could not start a lab")


async def test_a_restarted_lab_resumes_lab_time(tmp_path):
    state = StateDir(tmp_path / "state")
    lab = await start_lab(state)
    lab.clock.advance(2 * DAY)
    before_stop = lab.clock.now()
    await lab.stop()
    lab = await start_lab(state)
    try:
        assert lab.clock.now() >= before_stop
        assert lab.clock.now() >= time.time() + 2 * DAY - 1
    finally:
        await lab.stop()
