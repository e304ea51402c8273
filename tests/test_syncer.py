"""Group commit (maillab.base.syncer) and durability steps (maillab.base.fsutil): shared flushes, order, clean failure."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sys
import tempfile
import threading

import pytest

from maillab.base.fsutil import MAY_BLOCK, finish, write_new
from maillab.base.syncer import Syncer
from maillab.lab.state import StateDir
from maillab.queue.records import Entry, Recipient
from maillab.queue.spool import Spool


def _entry(qid: str) -> Entry:
    entry = Entry(qid, "santa@northpole.org", 1.0, 10, "")
    entry.recipients = {"mafudge@syr.edu": Recipient("mafudge@syr.edu")}
    return entry


@pytest.fixture(params=["syncfs", "fsync"])
def syncer(request, tmp_path):
    if request.param == "syncfs" and not sys.platform.startswith("linux"):
        pytest.skip("syncfs is Linux only")
    s = Syncer(tmp_path, use_syncfs=request.param == "syncfs")
    assert s.method == request.param
    yield s
    s.close()


async def test_concurrent_writers_share_flushes(syncer, tmp_path):
    paths = [tmp_path / f"f{i}" for i in range(50)]
    for p in paths:
        write_new(p, b"x" * 1000)
    await asyncio.gather(*(syncer.flush([p, tmp_path]) for p in paths))
    assert 1 <= syncer.flushes < len(paths)       # 50 requests, fewer flushes


async def test_spool_accept_renames_only_after_the_file_is_flushed(syncer, tmp_path):
    spool = Spool(tmp_path / "spool")
    steps = spool.accept(_entry("Q1"), b"Subject: x\r\n\r\nbody\r\n")
    first = next(steps)
    assert [p.name for p in first] == [".Q1.tmp"]          # the file, under its temp name
    assert not (spool.folder / "Q1.msg").exists()
    await syncer.flush(first)
    second = steps.send(None)
    assert second == [spool.folder] and (spool.folder / "Q1.msg").exists()
    assert not (spool.folder / ".Q1.tmp").exists()
    await syncer.flush(second)
    with pytest.raises(StopIteration):
        steps.send(None)
    head, _, body = (spool.folder / "Q1.msg").read_bytes().partition(b"\n")
    assert json.loads(head)["id"] == "Q1" and body == b"Subject: x\r\n\r\nbody\r\n"
    spool.close()


async def test_a_removed_message_file_is_overwritten_by_the_next_one_not_deleted(syncer, tmp_path):
    spool = Spool(tmp_path / "spool")
    try:
        await syncer.run(spool.accept(_entry("Q1"), b"Subject: one\r\n\r\n" + b"x" * 5000))
        inode = (spool.folder / "Q1.msg").stat().st_ino
        await syncer.run(spool.remove("Q1"))
        assert not (spool.folder / "Q1.msg").exists()
        await syncer.run(spool.accept(_entry("Q2"), b"Subject: two\r\n\r\nshort\r\n"))
        again = spool.folder / "Q2.msg"
        assert again.stat().st_ino == inode                        # the same file, no new inode
        assert again.read_bytes().partition(b"\n")[2] == b"Subject: two\r\n\r\nshort\r\n"   # nothing left over
        assert [e.id for e in spool.load()] == ["Q2"]
    finally:
        spool.close()


async def test_spare_files_are_not_messages_and_a_restart_deletes_them(syncer, tmp_path):
    spool = Spool(tmp_path / "spool")
    await syncer.run(spool.accept(_entry("Q1"), b"x\r\n"))
    await syncer.run(spool.remove("Q1"))
    assert [p.name for p in spool.folder.glob(".spare-*.tmp")] != []
    spool.close()
    again = Spool(tmp_path / "spool")
    assert again.load() == []
    assert sorted(p.name for p in again.folder.iterdir()) == ["journal"]
    again.close()


class FailingSyncer(Syncer):
    """A disk that fails its n-th flush (as a full or dying disk would)."""

    def __init__(self, folder, fail_at: int) -> None:
        super().__init__(folder, use_syncfs=False)
        self.fail_at = fail_at

    def _flush(self, requests):
        failed = super()._flush(requests)
        if self.flushes == self.fail_at:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return failed


@pytest.mark.parametrize("fail_at", [1, 2])
async def test_a_failed_flush_leaves_no_spool_file_behind(tmp_path, fail_at):
    syncer = FailingSyncer(tmp_path, fail_at)
    spool = Spool(tmp_path / "spool")
    try:
        with pytest.raises(OSError) as caught:
            await syncer.run(spool.accept(_entry("Q1"), b"x\r\n"))
        assert caught.value.errno == errno.EIO
        assert sorted(p.name for p in spool.folder.iterdir()) == ["journal"]   # no .msg, no .tmp
        assert spool.load() == []
    finally:
        spool.close()
        syncer.close()


async def test_a_spare_whose_rename_was_not_flushed_is_never_reused(tmp_path):
    syncer = FailingSyncer(tmp_path, fail_at=3)       # accept: 2 flushes; the removal's fails
    spool = Spool(tmp_path / "spool")
    try:
        await syncer.run(spool.accept(_entry("Q1"), b"x\r\n"))
        await syncer.run(spool.remove("Q1"))             # still removed: a duplicate at worst
        assert list(spool.folder.glob(".spare-*")) == [] and not (spool.folder / "Q1.msg").exists()
        await syncer.run(spool.accept(_entry("Q2"), b"y\r\n"))
        assert (spool.folder / "Q2.msg").exists()
    finally:
        spool.close()
        syncer.close()


async def test_run_returns_what_the_steps_return_and_the_loop_does_none_of_their_work(syncer, tmp_path):
    threads = []

    def steps():
        threads.append(threading.current_thread())
        write_new(tmp_path / "big", b"y" * 10)
        yield [tmp_path / "big"]
        threads.append(threading.current_thread())
        yield [tmp_path]
        threads.append(threading.current_thread())
        return "done"

    assert await syncer.run(steps()) == "done"
    assert len(threads) == 3 and all(t.name == "maillab-sync" for t in threads)


async def test_steps_that_may_block_go_on_in_a_pool_thread_until_they_ask_for_a_flush(syncer, tmp_path):
    threads = []

    def steps():
        yield MAY_BLOCK                                # say, a folder that needs a scan
        threads.append(threading.current_thread().name)
        yield [tmp_path]
        threads.append(threading.current_thread().name)
        return 7

    assert await syncer.run(steps()) == 7
    assert threads[0] not in ("maillab-sync", "MainThread") and threads[1] == "maillab-sync"


async def test_steps_of_many_writers_share_rounds(syncer, tmp_path):
    def steps(i):
        write_new(tmp_path / f"m{i}", b"z" * 100)
        yield [tmp_path / f"m{i}"]
        yield [tmp_path]
        return i

    assert await asyncio.gather(*(syncer.run(steps(i)) for i in range(40))) == list(range(40))
    assert 2 <= syncer.flushes < 40


def test_finish_fsyncs_in_place_and_throws_errors_into_the_steps(tmp_path):
    cleaned = []

    def steps():
        try:
            yield [tmp_path / "missing"]
        except FileNotFoundError:
            cleaned.append(True)
            raise

    with pytest.raises(FileNotFoundError):
        finish(steps())
    assert cleaned == [True]


async def test_close_fails_waiting_requests_instead_of_hanging(tmp_path):
    syncer = Syncer(tmp_path)
    await syncer.flush([tmp_path])
    waiting = asyncio.ensure_future(syncer.flush([tmp_path]))
    await asyncio.sleep(0)                     # one turn of the loop: asked, not yet handed to the thread
    assert syncer._pending
    syncer.close()
    for request in (waiting, syncer.flush([tmp_path])):
        with pytest.raises(OSError) as caught:
            await request
        assert caught.value.errno == errno.ESHUTDOWN   # a 451 for the client, never a 5xx
    syncer.close()                                     # twice is fine


async def test_in_fsync_mode_a_bad_path_fails_only_the_request_that_named_it(tmp_path):
    syncer = Syncer(tmp_path, use_syncfs=False)
    try:
        good, bad = (asyncio.ensure_future(syncer.flush(paths))
                     for paths in ([tmp_path], [tmp_path / "gone"]))
        await asyncio.wait_for(good, 5)
        with pytest.raises(FileNotFoundError):
            await asyncio.wait_for(bad, 5)
        await syncer.flush([tmp_path])                 # the thread goes on
    finally:
        syncer.close()


async def test_steps_that_end_without_a_flush_end_in_a_thread_too(tmp_path):
    def steps():
        return "nothing to flush"
        yield []                                       # a generator that never yields

    syncer = Syncer(tmp_path)
    try:
        assert await asyncio.wait_for(syncer.run(steps()), 5) == "nothing to flush"
        assert syncer.flushes == 0
    finally:
        syncer.close()


async def test_the_steps_after_a_flush_can_wait_for_a_lock_in_a_pool_thread(syncer, tmp_path):
    threads = []

    def steps():
        threads.append(threading.current_thread())
        yield [tmp_path]
        threads.append(threading.current_thread())
        yield MAY_BLOCK                                # a lock an IMAP session holds
        threads.append(threading.current_thread())
        yield MAY_BLOCK                                # ... and another: still in a pool thread
        threads.append(threading.current_thread())
        yield [tmp_path]
        threads.append(threading.current_thread())
        return 42

    assert await syncer.run(steps()) == 42
    names = [t.name for t in threads]
    assert names[:2] == ["maillab-sync"] * 2 and names[4] == "maillab-sync"
    assert all(n not in ("maillab-sync", "MainThread") for n in names[2:4])


async def test_steps_under_way_when_the_syncer_closes_clean_up_after_themselves(tmp_path, monkeypatch):
    syncer = Syncer(tmp_path)
    cleaned = []

    def steps():
        yield MAY_BLOCK
        (tmp_path / "partial").write_bytes(b"x")
        try:
            yield [tmp_path / "partial"]
        except OSError:
            (tmp_path / "partial").unlink()
            cleaned.append(True)
            raise
        return "never"

    pool = asyncio.to_thread

    async def first_step_then_the_lab_stops(fn, *args):
        result = await pool(fn, *args)
        syncer.close()
        return result

    monkeypatch.setattr(asyncio, "to_thread", first_step_then_the_lab_stops)
    with pytest.raises(OSError) as caught:
        await syncer.run(steps())
    assert caught.value.errno == errno.ESHUTDOWN and cleaned == [True]
    assert not (tmp_path / "partial").exists()



def test_syncfs_only_when_the_spool_and_maildirs_share_the_state_folder_s_file_system(tmp_path):
    state = StateDir(tmp_path / "state")
    state.prepare()
    assert state.one_file_system()
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system to put the Maildirs on")
    elsewhere = tempfile.mkdtemp(dir="/dev/shm")
    try:
        (state.root / "mail").rmdir()
        (state.root / "mail").symlink_to(elsewhere)     # the Maildirs on another file system
        assert not state.one_file_system()               # a syncfs of the state folder would miss them
    finally:
        os.rmdir(elsewhere)
