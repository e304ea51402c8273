"""Admin commands against a running lab (or its state folder): queue, hosts, clock, dns.

Each `cmd_*` takes the parsed arguments, talks to the lab over the control
socket (`control.call`) and prints a human table.  `maillab queue` also works
on a stopped lab: it reads the spool folders without changing them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..base.clock import parse_duration
from ..queue.listing import format_queue
from ..queue.spool import Spool
from .control import ControlError, NotRunning, call, socket_path
from .state import StateDir


def _sock(args: argparse.Namespace) -> Path:
    return socket_path(StateDir(args.state).root)


def _offline_queue(state: StateDir) -> str:
    rows = []
    spool_root = state.root / "spool"
    if spool_root.is_dir():
        for folder in sorted(spool_root.iterdir()):
            spool = Spool(folder)
            try:
                rows += [(folder.name, e) for e in spool.load(compact=False)]
            finally:
                spool.close()
    rows.sort(key=lambda row: (row[1].arrival, row[1].id))
    return format_queue(rows)


def cmd_queue(args: argparse.Namespace) -> int:
    action = args.action or "list"
    sock = _sock(args)
    if action == "list":
        try:
            sys.stdout.flush()
            text = call(sock, "queue.text", out=sys.stdout.buffer)   # streamed: None, already written
            if text is not None:
                sys.stdout.write(text)
        except NotRunning:
            state = StateDir(args.state)
            if not state.root.is_dir():
                raise ControlError(f"state folder {state.root} does not exist: no lab runs or has run "
                                   f"there (start one with: maillab serve --state {state.root})") from None
            print("(the lab is not running: read from the state folder)")
            sys.stdout.write(_offline_queue(state))
        return 0
    if action == "flush":
        n = call(sock, "queue.flush")
        print(f"flushing {n} deferred message{'s' if n != 1 else ''}")
        return 0
    if not args.id:
        raise ControlError(f"queue {action} needs a queue ID (see: maillab queue)")
    done = call(sock, f"queue.{action}", id=args.id)
    verb = {"hold": "put on hold", "release": "released", "delete": "deleted", "requeue": "requeued"}[action]
    print(f"{done}: {verb}")
    return 0


def cmd_hosts(args: argparse.Namespace) -> int:
    sock = _sock(args)
    action = args.action or "list"
    if action == "list":
        hosts = call(sock, "hosts.list")
        print(f"{'HOST':<21} {'ADDRESS':<11} {'STATE':<17} {'QUEUED':>6}  SERVICES / MAILBOXES / STARTTLS / CHAOS")
        for h in hosts:
            extra = " ".join(h["services"])
            if h["domains"]:
                extra += f"  mailboxes: {', '.join(h['domains'])}"
            if h["starttls"] == "stripped":
                extra += "  STARTTLS stripped"
            if h["chaos"]:
                extra += f"  chaos: {h['chaos']}"
            print(f"{h['name']:<21} {h['address']:<11} {h['state']:<17} {h['queued']:>6}  {extra}")
        return 0
    if not args.host:
        raise ControlError(f"hosts {action} needs a host name (see: maillab hosts)")
    if action == "down":
        print(f"{args.host}: {call(sock, 'hosts.down', host=args.host, mode=args.mode)}")
    elif action == "up":
        print(f"{args.host}: {call(sock, 'hosts.up', host=args.host)}")
    elif action in ("strip", "unstrip"):
        print(f"{args.host}: {call(sock, 'hosts.strip', host=args.host, on=action == 'strip')}")
    else:
        result = call(sock, "hosts.chaos", host=args.host, off=args.off, stage=args.stage,
                      probability=args.probability, code=args.code, seed=args.seed)
        print(f"{args.host}: chaos {result}")
    return 0


def cmd_clock(args: argparse.Namespace) -> int:
    sock = _sock(args)
    if args.action == "advance":
        if not args.value:
            raise ControlError("clock advance needs a duration, like 1d or 4h")
        try:
            seconds = parse_duration(args.value)
        except ValueError as e:
            raise ControlError(str(e)) from None
        state = call(sock, "clock.advance", seconds=seconds)
    elif args.action == "speed":
        if not args.value:
            raise ControlError("clock speed needs a factor, like 600")
        try:
            speed = float(args.value)
        except ValueError:
            raise ControlError(f"not a speed factor: {args.value!r}") from None
        state = call(sock, "clock.speed", speed=speed)
    else:
        state = call(sock, "clock.show")
    print(f"lab time {time.strftime('%a %b %d %H:%M:%S %Y', time.localtime(state['now']))}, "
          f"speed x{state['speed']:g}")
    return 0


def cmd_dns(args: argparse.Namespace) -> int:
    faults = call(_sock(args), "dns.fault", zone=args.zone, mode=args.mode)
    if faults:
        print("DNS faults: " + ", ".join(f"{z} {m}" for z, m in faults.items()))
    else:
        print("DNS faults: none")
    return 0
