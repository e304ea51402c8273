"""The tests' own waits (conftest): a time-out fails loudly and names what was awaited."""

from __future__ import annotations

import asyncio

import pytest

from conftest import async_wait_for, stays_false, wait_for


def test_wait_for_returns_the_truthy_value():
    polls = iter([0, [], ["a message"]])
    assert wait_for(lambda: next(polls), 5, 0.001) == ["a message"]


def test_wait_for_raises_naming_the_predicate_on_time_out():
    with pytest.raises(AssertionError, match=r"timed out after 0.05 s waiting for .*lambda: \[\]"):
        wait_for(lambda: [], 0.05, 0.01)


def test_wait_for_names_what_and_asks_a_callable_what_only_at_the_time_out():
    asked: list[int] = []

    def screen() -> str:
        asked.append(1)
        return "the screen now"
    with pytest.raises(AssertionError, match="waiting for 'Bye' on the screen now .*last value False"):
        wait_for(lambda: False, 0.05, 0.01, what=lambda: f"'Bye' on {screen()}")
    assert asked == [1]
    with pytest.raises(AssertionError, match="waiting for a delivery"):
        wait_for(lambda: None, 0.05, 0.01, what="a delivery")


async def test_async_wait_for_lets_the_loop_run_and_returns_the_value():
    seen: list[str] = []
    asyncio.get_running_loop().call_later(0.05, seen.append, "delivered")
    assert await async_wait_for(lambda: seen, 10) == ["delivered"]


async def test_async_wait_for_raises_on_time_out():
    with pytest.raises(AssertionError, match="timed out after 0.05 s waiting for the session"):
        await async_wait_for(lambda: 0, 0.05, what="the session")


async def test_stays_false_passes_while_nothing_happens_and_fails_when_it_does():
    await stays_false(lambda: False, 0.05)
    happened: list[str] = []
    asyncio.get_running_loop().call_later(0.02, happened.append, "a second banner")
    with pytest.raises(AssertionError, match=r"a banner happened \(value \['a second banner'\]\)"):
        await stays_false(lambda: happened, 10, what="a banner")
