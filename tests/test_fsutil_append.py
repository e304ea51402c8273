"""fsutil.append_file: a spilled body appended to a queue file, by the kernel or, where the
file system refuses copy_file_range, through a bounded buffer."""

from __future__ import annotations

import errno
import os

import pytest

from maillab.base.fsutil import append_file


@pytest.fixture
def files(tmp_path):
    target, source = tmp_path / "entry", tmp_path / "body"
    target.write_bytes(b"{envelope}\nHeader: 1\r\n")
    body = os.urandom(3 * (1 << 20) + 17)         # more than one buffer's worth
    source.write_bytes(body)
    return target, source, body


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "refused: buffered"])
def test_the_body_follows_what_the_file_held(files, monkeypatch, kernel_copy):
    """Copied by the kernel, or, on a file system without copy_file_range, through the buffer."""
    if not kernel_copy:
        def refuse(*args):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        monkeypatch.setattr(os, "copy_file_range", refuse)
    target, source, body = files
    with open(source, "rb") as f:
        append_file(target, f)
    assert target.read_bytes() == b"{envelope}\nHeader: 1\r\n" + body


def test_another_error_is_not_hidden(files, monkeypatch):
    def fail(*args):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "copy_file_range", fail)
    target, source, _ = files
    with open(source, "rb") as f, pytest.raises(OSError) as e:
        append_file(target, f)
    assert e.value.errno == errno.ENOSPC
