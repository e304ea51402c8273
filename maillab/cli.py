"""The `maillab` command line: the TUI (default), `serve`, `reset`.

Every command has --help; every error is one line on stderr and a non-zero
exit.  Options shared by commands that run a lab: --world, --state,
--port-offset.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from .lab import Lab, LabError
from .ports import Ports
from .state import StateDir, StateError, default_state_path
from .world import WorldError, load_world

EXIT_ERROR = 1


def _lab_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--world", metavar="DIR", type=Path,
                   help="world folder with lab.toml and zone files (default: the built-in world)")
    p.add_argument("--state", metavar="DIR", type=Path,
                   help=f"state folder: spool, Maildirs, directory, logs (default: {default_state_path()})")
    p.add_argument("--port-offset", metavar="N", type=int, default=0,
                   help="add N to every port (DNS 1053, SMTP 2525, ...), to run beside another lab")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maillab",
        description="A small Internet of mail on loopback: DNS, MTAs, Maildirs, and a TUI to watch it.",
        epilog="Without a command, maillab starts the TUI. Try: maillab serve, then telnet localhost 2525")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    tui = sub.add_parser("tui", help="the lab inside the terminal UI (the default)",
                         description="Run the lab with its terminal UI on the same event loop.")
    _lab_options(tui)
    serve = sub.add_parser("serve", help="the lab headless: endpoints, then the maillog",
                           description="Run the lab without a UI. Prints one line per listening "
                                       "endpoint, then the maillog. Ctrl-C or SIGTERM stops it; "
                                       "the queue is kept.")
    _lab_options(serve)
    reset = sub.add_parser("reset", help="delete the state folder and start afresh",
                           description="Delete the state folder: queued mail, Maildirs, accounts, logs.")
    reset.add_argument("--state", metavar="DIR", type=Path, help="state folder to delete")
    reset.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    return parser


def _fail(message: str) -> int:
    print(f"maillab: {message}", file=sys.stderr)
    return EXIT_ERROR


def _make_lab(args: argparse.Namespace, echo: bool) -> Lab:
    world = load_world(args.world)
    if not 0 <= args.port_offset <= 60000:
        raise LabError("--port-offset must be between 0 and 60000")
    return Lab(world=world, state=StateDir(args.state), ports=Ports(args.port_offset),
               echo=sys.stdout if echo else None)


async def _serve(lab: Lab) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await lab.start()
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
    asyncio.run(_serve(lab))
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    from .tui.app import MailLabApp   # Textual is imported only for the TUI
    lab = _make_lab(args, echo=False)
    app = MailLabApp(lab)
    app.run()
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "tui"
    if args.command is None:
        args = parser.parse_args(["tui", *(argv if argv is not None else sys.argv[1:])])
    try:
        return {"serve": cmd_serve, "tui": cmd_tui, "reset": cmd_reset}[command](args)
    except (WorldError, StateError, LabError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
