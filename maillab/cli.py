"""The `maillab` command line: the TUI (default), `serve`, `reset`, `ca`, and the admin commands.

Every command has --help; every error is one line on stderr and a non-zero
exit.  Options shared by commands that run a lab: --world, --state,
--port-offset.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from .base import eventloop
from .base.errors import UserError
from .base.fsutil import UnsafeFolder, private_dir
from .lab.admin import cmd_clock, cmd_dns, cmd_hosts, cmd_queue
from .lab.state import StateDir, default_state_path
from .mua import sendcmd
from .net.ports import Ports

if TYPE_CHECKING:
    from .lab.supervisor import Lab

EXIT_ERROR = 1


def _version() -> str:
    try:
        return metadata.version("maillab")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _lab_options(p: argparse.ArgumentParser, ports: Ports) -> None:
    p.add_argument("--world", metavar="DIR", type=Path,
                   help="world folder with lab.toml and zone files (default: the built-in world)")
    p.add_argument("--state", metavar="DIR", type=Path,
                   help=f"state folder: spool, Maildirs, directory, logs (default: {default_state_path()})")
    p.add_argument("--port-offset", metavar="N", type=int, default=0,
                   help=f"add N to every port (now: DNS {ports.dns}, SMTP {ports.smtp}, IMAP {ports.imap}, "
                        f"POP3 {ports.pop3}, ...), to run beside another lab")
    p.add_argument("--clock-speed", metavar="X", type=float, default=1.0,
                   help="run the lab clock X times faster (600: a day in under 2.5 minutes)")


def _state_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", metavar="DIR", type=Path,
                   help=f"state folder of the lab (default: {default_state_path()})")


def build_parser(ports: Ports = Ports()) -> argparse.ArgumentParser:
    """The parser; its help shows the ports of `ports` (the offset given on the command line)."""
    parser = argparse.ArgumentParser(
        prog="maillab",
        description="A small Internet of mail on loopback: DNS, MTAs, Maildirs, and a TUI to watch it.",
        epilog=f"Without a command, maillab starts the TUI. Try: maillab serve, then telnet localhost {ports.smtp}")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    tui = sub.add_parser("tui", help="the lab inside the terminal UI (the default)",
                         description="Run the lab with its terminal UI on the same event loop.")
    _lab_options(tui, ports)
    tui.add_argument("--presenter", action="store_true",
                     help="start in presenter mode: bigger, simpler panels for a projector (key p)")
    serve = sub.add_parser("serve", help="the lab headless: endpoints, then the maillog",
                           description="Run the lab without a UI. Prints one line per listening "
                                       "endpoint, then the maillog. Ctrl-C or SIGTERM stops it; "
                                       "the queue is kept.")
    _lab_options(serve, ports)
    reset = sub.add_parser("reset", help="delete the state folder and start afresh",
                           description="Delete the state folder: queued mail, Maildirs, accounts, logs, "
                                       "and the lab CA with the hosts' TLS keys. The next run makes a new "
                                       "CA at the same path: clients given the path (curl --cacert "
                                       "\"$(maillab ca)\") keep working; a CA imported elsewhere must be "
                                       "imported again.")
    reset.add_argument("--state", metavar="DIR", type=Path, help="state folder to delete")
    reset.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    ca = sub.add_parser("ca", help="print the path of the lab CA certificate, for clients to trust",
                        description="Print the path of the lab CA's certificate (made now if the state "
                                    "folder has none yet): every TLS port of the lab serves a certificate "
                                    "it signed. Like: curl --cacert \"$(maillab ca)\" imaps://127.0.0.1:"
                                    f"{ports.imaps}/, swaks --tls --tls-ca-path \"$(maillab ca)\", openssl "
                                    "s_client -CAfile \"$(maillab ca)\". maillab reset deletes it; the next "
                                    "run makes a new one at the same path.")
    ca.add_argument("--pem", action="store_true", help="print the certificate itself (PEM), not its path")
    _state_option(ca)

    queue = sub.add_parser("queue", help="list the queues; flush, hold, release, delete, requeue",
                           description="Like mailq and postsuper: list every queued message (works on a "
                                       "stopped lab too), or act on one by its queue ID.")
    queue.add_argument("action", nargs="?", choices=["list", "flush", "hold", "release", "delete", "requeue"])
    queue.add_argument("id", nargs="?", help="queue ID (for hold, release, delete, requeue)")
    _state_option(queue)

    hosts = sub.add_parser("hosts", help="list hosts; take one down or up; set chaos; strip STARTTLS",
                           description="Simulate outages of an MTA host: down --mode refuse (connection "
                                       "refused), 421 (service not available), silent (accepts, never "
                                       "speaks), greylist (450 at the first try); up ends it. chaos makes "
                                       "MAIL, RCPT or DATA fail with a probability (seeded: runs replay). "
                                       "strip makes the host's SMTP and submission stop offering STARTTLS "
                                       "(as an attacker on the path would): a sender whose TLS is only "
                                       "opportunistic (may) goes on in plaintext, one that requires it "
                                       "(encrypt, verify) defers; unstrip offers it again.")
    hosts.add_argument("action", nargs="?", choices=["list", "down", "up", "chaos", "strip", "unstrip"])
    hosts.add_argument("host", nargs="?", help="host name, like smtp1.syr.edu")
    hosts.add_argument("--mode", default="refuse", choices=["refuse", "421", "silent", "greylist"],
                       help="how the host is down (default: refuse)")
    hosts.add_argument("--stage", default="RCPT", type=str.upper, choices=["MAIL", "RCPT", "DATA"],
                       help="chaos: the command that fails (default RCPT)")
    hosts.add_argument("--probability", type=float, default=0.5, help="chaos: chance of failure (default 0.5)")
    hosts.add_argument("--code", type=int, default=451, help="chaos: the reply code (default 451)")
    hosts.add_argument("--seed", type=int, default=0, help="chaos: random seed (default 0)")
    hosts.add_argument("--off", action="store_true", help="chaos: turn it off")
    _state_option(hosts)

    clock = sub.add_parser("clock", help="show the lab clock, fast-forward it, change its speed",
                           description="The lab clock drives retries, lifetimes and timestamps. "
                                       "'advance 1d' jumps a day ahead; 'speed 600' makes a day pass "
                                       "in under 2.5 minutes.")
    clock.add_argument("action", nargs="?", choices=["show", "advance", "speed"])
    clock.add_argument("value", nargs="?", help="a duration (90s, 5m, 4h, 1d) or a speed factor")
    _state_option(clock)

    dns = sub.add_parser("dns", help="make a zone fail: servfail, nxdomain, timeout, off",
                         description="Simulate a DNS fault for one zone of the world.")
    dns.add_argument("action", choices=["fault"])
    dns.add_argument("zone", help="zone, like syr.edu")
    dns.add_argument("mode", choices=["servfail", "nxdomain", "timeout", "off"])
    _state_option(dns)
    sendcmd.add_parser(sub, ports)
    return parser


def _fail(message: str) -> int:
    print(f"maillab: {message}", file=sys.stderr)
    return EXIT_ERROR


def _make_lab(args: argparse.Namespace, echo: bool) -> "Lab":
    # The engine is imported only by the commands that run it: admin commands start fast.
    from .base.clock import Clock
    from .lab.supervisor import Lab, LabError
    from .lab.world import load_world
    world = load_world(args.world)
    if not 0 <= args.port_offset <= 60000:
        raise LabError("--port-offset must be between 0 and 60000")
    if args.clock_speed <= 0:
        raise LabError("--clock-speed must be positive")
    return Lab(world=world, state=StateDir(args.state), ports=Ports(args.port_offset),
               clock=Clock(args.clock_speed), echo=sys.stdout if echo else None)


async def _serve(lab: "Lab") -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await lab.start()
    gc.freeze()    # what start-up built lives as long as the lab: the collector need not walk it again
    try:
        print(f"maillab: world {lab.world.name!r}, state {lab.state.root}", flush=True)
        for endpoint in lab.endpoints:
            print(f"listening  {endpoint}", flush=True)
        print("maillab: ready; the maillog follows (Ctrl-C stops)", flush=True)
        await stop.wait()
    finally:
        await lab.stop()


def cmd_serve(args: argparse.Namespace) -> int:
    lab = _make_lab(args, echo=True)
    with eventloop.runner() as runner:
        runner.run(_serve(lab))
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    from .tui.app import MailLabApp  # Textual is imported only for the TUI
    lab = _make_lab(args, echo=False)
    app = MailLabApp(lab, presenter=args.presenter, freeze_gc=True)
    with eventloop.runner() as runner:
        app.run(loop=runner.get_loop())
    if app.startup_error:
        return _fail(app.startup_error)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    state = StateDir(args.state)
    if not state.root.exists():
        print(f"maillab: nothing to reset at {state.root}")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            return _fail(f"reset deletes {state.root}; add --yes to confirm")
        answer = input(f"Delete {state.root} (queued mail, Maildirs, accounts, logs)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("maillab: nothing deleted")
            return 0
    state.reset()
    print(f"maillab: deleted {state.root}")
    return 0


def cmd_ca(args: argparse.Namespace) -> int:
    from .lab.ca import LabCA  # cryptography is imported only here and by the lab
    state = StateDir(args.state)
    try:
        private_dir(state.root)
        path = LabCA(state.tls_dir).ensure()
    except OSError as e:
        return _fail(f"{state.tls_dir}: cannot make the lab CA: {e.strerror}")
    except UnsafeFolder as e:
        return _fail(f"unsafe state folder: {e}")
    print(path.read_text() if args.pem else path, end="\n" if not args.pem else "")
    return 0


def _offset_in(argv: list[str]) -> int:
    """The --port-offset on the command line (0 if none or not a number), for the help text."""
    early = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    early.add_argument("--port-offset", default="0")
    try:
        return int(early.parse_known_args(argv)[0].port_offset)
    except (argparse.ArgumentError, ValueError):     # a bad value: the real parser says so
        return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(Ports(_offset_in(argv)))
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["tui", *argv]        # `maillab --state DIR` is `maillab tui --state DIR`
    args = parser.parse_args(argv)
    command = args.command
    try:
        return {"serve": cmd_serve, "tui": cmd_tui, "reset": cmd_reset, "ca": cmd_ca, "queue": cmd_queue,
                "hosts": cmd_hosts, "clock": cmd_clock, "dns": cmd_dns,
                "send": sendcmd.cmd_send}[command](args)
    except UserError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
