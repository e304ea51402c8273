"""Reloading the spool at start: a message file that goes away while the folder is being
listed (delivered and removed meanwhile) is skipped, not a crash of the whole load."""

from __future__ import annotations

import os
from types import SimpleNamespace

from maillab.queue.spool import Spool


def test_a_message_file_removed_during_the_listing_is_skipped(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool")
    real_scandir = os.scandir

    def listing_with_a_vanished_file(folder):
        with real_scandir(folder) as found:
            entries = list(found)
        gone = os.path.join(folder, "1A2B3C4D5E.msg")       # listed, then removed
        return iter(entries + [SimpleNamespace(name="1A2B3C4D5E.msg", path=gone)])

    monkeypatch.setattr(os, "scandir", listing_with_a_vanished_file)
    assert spool.load() == []
    assert spool.load(compact=False) == []
