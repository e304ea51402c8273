"""Threads by References and In-Reply-To: the order and depth the Mail screen's list shows."""

from __future__ import annotations

from maillab.mua.threads import Links, thread


def links(own: str, refs: str = "", irt: str = "") -> Links:
    return Links.of(own and f"<{own}>", refs, irt)


def test_a_reply_hangs_under_its_message_and_the_thread_goes_up_with_it():
    got = thread([
        (1, links("a@x")),
        (2, links("b@x")),
        (3, links("c@x", "<a@x>", "<a@x>")),          # a reply to 1, newer than 2
    ])
    assert got == [(1, 0), (3, 1), (2, 0)]


def test_replies_nest_depth_first_oldest_reply_first():
    got = thread([
        (1, links("a@x")),
        (2, links("b@x", "<a@x>")),
        (3, links("c@x", "<a@x> <b@x>")),
        (4, links("d@x", "<a@x>")),
    ])
    assert got == [(1, 0), (2, 1), (3, 2), (4, 1)]


def test_in_reply_to_alone_is_enough_and_a_missing_parent_still_joins_its_replies():
    got = thread([
        (5, links("r1@x", irt="<gone@x>")),
        (6, links("r2@x", irt="Re: your mail <gone@x>")),
        (7, links("other@x")),
    ])
    assert got == [(7, 0), (5, 0), (6, 0)]            # the parent is not here: no row for it


def test_a_reference_loop_is_cut_and_every_message_still_shows_once():
    got = thread([
        (1, links("a@x", "<b@x>")),
        (2, links("b@x", "<a@x>")),
    ])
    assert sorted(uid for uid, _ in got) == [1, 2]


def test_duplicate_message_ids_and_messages_without_one_each_keep_a_row():
    got = thread([(1, links("same@x")), (2, links("same@x")), (3, links("")), (4, links(""))])
    assert sorted(uid for uid, _ in got) == [1, 2, 3, 4]
    assert all(depth == 0 for _, depth in got)


def test_a_long_chain_needs_no_recursion():
    n = 5000
    msgs = [(1, links("m1@x"))] + [(i, links(f"m{i}@x", f"<m{i - 1}@x>")) for i in range(2, n + 1)]
    got = thread(msgs)
    assert got[0] == (1, 0) and got[-1] == (n, n - 1)
