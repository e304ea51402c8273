"""Chaos is seeded: the same seed fails the same commands, run after run."""

from maillab.mta.agent import Chaos


def test_same_seed_same_failures():
    runs = []
    for _ in range(2):
        chaos = Chaos("RCPT", 0.3, 451, seed=42)
        runs.append([chaos.strike("RCPT") is not None for _ in range(200)])
    assert runs[0] == runs[1]
    assert 30 < sum(runs[0]) < 90


def test_only_the_chosen_stage_fails_and_the_reply_is_well_formed():
    chaos = Chaos("DATA", 1.0, 554, seed=1)
    assert chaos.strike("RCPT") is None and chaos.strike("MAIL") is None
    assert chaos.strike("DATA") == "554 5.3.0 chaos: simulated failure at DATA"
    assert Chaos("RCPT", 1.0, 450, seed=1).strike("RCPT") == "450 4.2.0 chaos: simulated failure at RCPT"
