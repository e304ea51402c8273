"""The panels' small text formats: a deferral reason made to fit a table cell."""

from __future__ import annotations

from maillab.tui.fmt import brief_reason


def test_a_refused_connect_puts_the_cause_first():
    assert brief_reason("4.4.1 connect to smtp1.syr.edu[127.0.0.1]:2525: Connection refused") == \
        "4.4.1 Connection refused (smtp1.syr.edu[127.0.0.1]:2525)"


def test_each_mx_try_is_shortened():
    reason = ("4.4.1 connect to mx1.syr.edu[127.0.0.1]:2525: Connection refused; "
              "connect to mx2.syr.edu[127.0.0.9]:2525: timeout")
    assert brief_reason(reason) == ("4.4.1 Connection refused (mx1.syr.edu[127.0.0.1]:2525); "
                                    "timeout (mx2.syr.edu[127.0.0.9]:2525)")


def test_other_reasons_stay_as_they_are():
    said = "4.7.1 host smtp1.syr.edu[127.0.0.1] said: 450 4.7.1 greylisted, try again later"
    assert brief_reason(said) == said
    assert brief_reason("") == ""
