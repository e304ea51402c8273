"""The control socket, client and server in one loop: answers, errors, streamed text."""

from __future__ import annotations

import asyncio
import io

import pytest

from maillab.lab.control import ControlError, ControlServer, NotRunning, Streamed, call


@pytest.fixture
async def control(tmp_path):
    server = ControlServer(tmp_path / "control.sock")

    async def echo(args):
        return args

    async def listing(args):
        return Streamed(f"line {i}\n" * 1000 for i in range(args["pieces"]))

    async def broken(args):
        def pieces():
            yield "first piece\n"
            raise RuntimeError("a bug")
        return Streamed(pieces())

    async def refuse(args):
        raise ControlError("no message NOSUCHID in any queue")

    for name, handler in {"echo": echo, "listing": listing, "broken": broken, "refuse": refuse}.items():
        server.register(name, handler)
    await server.start()
    yield server
    await server.stop()


async def ask(control, command, **args):
    return await asyncio.to_thread(call, control.path, command, **args)


async def test_plain_answers_and_one_line_errors(control):
    assert await ask(control, "echo", id="ABC") == {"id": "ABC"}
    with pytest.raises(ControlError, match="^no message NOSUCHID in any queue$"):
        await ask(control, "refuse")
    with pytest.raises(ControlError, match="unknown command 'nope'"):
        await ask(control, "nope")


async def test_a_streamed_text_arrives_whole_returned_or_copied(control):
    expected = "".join(f"line {i}\n" * 1000 for i in range(50))
    assert await ask(control, "listing", pieces=50) == expected
    out = io.BytesIO()
    assert await ask(control, "listing", pieces=50, out=out) is None
    assert out.getvalue().decode() == expected


async def test_a_bug_while_streaming_is_said_at_the_end_and_the_server_goes_on(control):
    text = await ask(control, "broken")
    assert text.startswith("first piece\n") and "internal error, text cut short: RuntimeError: a bug" in text
    assert await ask(control, "echo", still="here") == {"still": "here"}


def test_no_lab_running(tmp_path):
    with pytest.raises(NotRunning):
        call(tmp_path / "control.sock", "echo")
