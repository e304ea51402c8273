"""The receive path's checkpoints: one ordered list of checks asked at each step (sans-IO).

At connect (the client's address and PTR name), HELO, MAIL FROM, each RCPT TO
and the end of data (before the 250), the SMTP server asks `Checkpoints.ask`
with the `Facts` known so far.  Each check that runs at that stage gives a
`Verdict`, in the order the checks were registered:

    accept       nothing to say; the next check is asked
    tag          header lines to add to the message (they add up); the next check is asked
    reject       the SMTP reply to give (4xx/5xx): no later check is asked
    quarantine   accept the message but hold it (the queue's hold: `maillab queue release`)

The first reject or quarantine decides; otherwise the tags together, or accept.
Every verdict that is not a plain accept comes back with its check's name, for
the maillog.  Today's policy (policy.py: address checks, relay rules,
greylisting, chaos, sender_login_match, the in-flow delay) is the first checks;
SPF at MAIL, DKIM/DMARC and filters at the end of data plug in here later,
without touching the protocol.  A check is a plain function of `Facts` (or a
coroutine function, for one that waits): no I/O of its own here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable

STAGES = ("connect", "helo", "mail", "rcpt", "data")
ACTIONS = ("accept", "tag", "reject", "quarantine")


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str                     # one of ACTIONS
    reply: str = ""                 # reject: the whole reply line ("554 5.7.1 ...")
    reason: str = ""
    headers: tuple[str, ...] = ()   # tag: header lines without CRLF ("X-Spam-Flag: YES")

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown verdict {self.action!r}")
        if self.action == "reject" and self.reply[:1] not in ("4", "5"):
            raise ValueError("a reject verdict needs a 4xx or 5xx reply")


ACCEPT = Verdict("accept")


def reject(reply: str, reason: str = "") -> Verdict:
    return Verdict("reject", reply, reason or reply[4:])


def tag(*headers: str, reason: str = "") -> Verdict:
    return Verdict("tag", reason=reason, headers=headers)


def quarantine(reason: str) -> Verdict:
    return Verdict("quarantine", reason=reason)


@dataclass(frozen=True, slots=True)
class Facts:
    """What a check may look at: the client and the transaction so far."""
    stage: str
    client_ip: str
    client_name: str | None = None
    helo: str = ""
    login: str | None = None        # the authenticated user
    sender: str | None = None       # MAIL FROM ("" the null sender); None before MAIL
    recipient: str = ""             # rcpt: the one asked about
    recipients: tuple[str, ...] = ()    # accepted so far (data: all of them)
    head: bytes = b""               # data: the start of the message (its header block)
    message: Callable[[], bytes] | None = None   # data: the whole message, read when asked (may be on disk)


CheckRun = Callable[[Facts], "Verdict | Awaitable[Verdict]"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    stages: frozenset[str]
    run: CheckRun

    def __post_init__(self) -> None:
        unknown = set(self.stages) - set(STAGES)
        if unknown:
            raise ValueError(f"check {self.name}: unknown stage {sorted(unknown)[0]!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict                          # what the checkpoint decided
    said: tuple[tuple[str, Verdict], ...]     # (check name, verdict) of every check that was not a plain accept


class Checkpoints:
    """The ordered checks of one host's receive path."""

    def __init__(self, checks: Iterable[Check] = ()) -> None:
        self._checks: list[Check] = []
        for check in checks:
            self.register(check)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self._checks]

    def register(self, check: Check, *, before: str | None = None) -> None:
        """Add `check` last, or just before the check named `before`."""
        if check.name in self.names:
            raise ValueError(f"a check named {check.name!r} is registered already")
        at = self.names.index(before) if before is not None else len(self._checks)
        self._checks.insert(at, check)

    def remove(self, name: str) -> None:
        self._checks = [c for c in self._checks if c.name != name]

    async def ask(self, facts: Facts) -> Decision:
        said: list[tuple[str, Verdict]] = []
        headers: list[str] = []
        for check in self._checks:
            if facts.stage not in check.stages:
                continue
            verdict = check.run(facts)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            assert isinstance(verdict, Verdict), f"check {check.name} gave {verdict!r}, not a Verdict"
            if verdict.action == "accept":
                continue
            said.append((check.name, verdict))
            if verdict.action in ("reject", "quarantine"):
                return Decision(verdict, tuple(said))
            headers += verdict.headers
        if headers:
            return Decision(tag(*headers, reason="; ".join(v.reason for _, v in said if v.reason)), tuple(said))
        return Decision(ACCEPT, tuple(said))
