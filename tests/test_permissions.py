"""Who may read the lab's files: state folders 0700 and the maillog 0600 whatever the
umask; a folder someone else owns or others may write in is refused with a clear error."""

from __future__ import annotations

import os
import stat
import tempfile

import pytest

from maillab.base.events import EventBus
from maillab.base.fsutil import UnsafeFolder, private_dir
from maillab.lab import control
from maillab.lab.control import ControlError
from maillab.lab.maillog import MailLog
from maillab.lab.state import StateDir, StateError


@pytest.fixture
def open_umask():
    old = os.umask(0)                   # the worst case: nothing masked
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_state_tree_is_the_owners_only_whatever_the_umask(tmp_path, open_umask):
    state = StateDir(tmp_path / "state")
    state.prepare()
    try:
        for sub in (state.root, state.log_dir, state.root / "spool", state.root / "mail"):
            assert mode(sub) == 0o700, sub
    finally:
        state.release()


def test_an_existing_state_folder_left_readable_is_made_private(tmp_path):
    root = tmp_path / "state"
    root.mkdir()
    root.chmod(0o755)
    state = StateDir(root)
    state.prepare()
    try:
        assert mode(root) == 0o700
    finally:
        state.release()


def test_a_state_folder_others_may_write_in_is_refused(tmp_path):
    root = tmp_path / "state"
    root.mkdir()
    root.chmod(0o777)
    with pytest.raises(StateError, match="group or others may write"):
        StateDir(root).prepare()
    assert mode(root) == 0o777           # refused, not silently "fixed"


def test_the_maillog_is_the_owners_only_whatever_the_umask(tmp_path, open_umask):
    (tmp_path / "old").write_text("a line from before\n")
    (tmp_path / "old").chmod(0o644)
    for name in ("new", "old"):
        log = MailLog(EventBus(), tmp_path / name)
        log._file.close()
        assert mode(tmp_path / name) == 0o600, name


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def long_state(tmp_path):
    return tmp_path / ("x" * 120)       # too long for AF_UNIX: the temp-dir stand-in


def test_the_control_socket_fallback_folder_is_made_private(temp_dir, open_umask):
    path = control.socket_path(long_state(temp_dir))
    assert path.parent == temp_dir / f"maillab-{os.getuid()}"
    assert mode(path.parent) == 0o700


def test_a_fallback_folder_someone_made_world_writable_is_refused(temp_dir):
    folder = temp_dir / f"maillab-{os.getuid()}"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(ControlError, match="group or others may write"):
        control.socket_path(long_state(temp_dir))


def test_a_fallback_that_is_a_symlink_is_refused(temp_dir):
    elsewhere = temp_dir / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (temp_dir / f"maillab-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(ControlError, match="not a folder"):
        control.socket_path(long_state(temp_dir))


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a folder away")
def test_a_folder_another_user_owns_is_refused(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(UnsafeFolder, match="owned by uid 65534"):
        private_dir(folder)
