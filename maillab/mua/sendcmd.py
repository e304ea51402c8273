"""`maillab send`: the scriptable MUA of the shell, swaks-like, on the lab's own SMTP client.

It builds the message (`compose`) or takes a prepared one (`--raw`), finds the
server — `--server HOST:PORT`, else the submission host of the sender's domain
in the running lab (asked over the control socket: its hosts, port offset and
world) — submits it (`submit`), prints the dialogue as swaks does, and exits
with a status that says what happened (`submit.EXIT_*`, listed in --help).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
import ssl
import sys
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any

from ..base.errors import UserError
from ..lab.ca import LabCA
from ..lab.control import NotRunning, call, socket_path
from ..lab.state import StateDir, default_state_path
from ..lab.world import load_world
from ..net.ports import Ports
from ..net.tls import client_context
from ..smtp.client_protocol import Credentials
from .compose import Attachment, Draft, build, envelope
from .identity import find
from .submit import EXIT_CODES, Server, TlsWay, submit, verdict

MAX_FILE = 64 * 1024 * 1024      # --raw and --attach: bigger is surely a mistake


def add_parser(sub: Any, ports: Ports) -> None:
    """The `send` subcommand's options."""
    codes = "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())
    p = sub.add_parser(
        "send", help="send a message from the shell, swaks-like, printing the SMTP dialogue",
        description="Compose a message (or take a prepared one with --raw) and submit it over SMTP, "
                    "by default to the submission port of the sender's own host in the running lab "
                    f"(:{ports.submission}, STARTTLS when offered, verified against the lab CA). "
                    "The dialogue is printed as swaks prints it: -> and <- in plaintext, ~> and <~ "
                    "under TLS, === for maillab's own remarks.",
        epilog=f"Exit status: {codes}; 1 any other error, 2 a bad command line. Example: maillab send "
               "--from santa@northpole.org --to mafudge@syr.edu --auth --subject 'Hello' --body 'Ho ho ho'")
    p.add_argument("--from", dest="sender", metavar="ADDRESS", required=True,
                   help="the sender (envelope MAIL FROM and the From header; 'Name <addr>' allowed)")
    p.add_argument("--to", action="append", default=[], metavar="ADDRESS", help="a recipient (repeatable)")
    p.add_argument("--cc", action="append", default=[], metavar="ADDRESS", help="a Cc recipient (repeatable)")
    p.add_argument("--bcc", action="append", default=[], metavar="ADDRESS",
                   help="a Bcc recipient (repeatable): in the envelope, never in the header")
    p.add_argument("--subject", help="the subject (default: 'test' and the date, as swaks)")
    p.add_argument("--body", help="the text (default: standard input when it is not a terminal)")
    p.add_argument("--attach", action="append", default=[], metavar="FILE", type=Path,
                   help="attach a file (repeatable; base64, its name kept)")
    p.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="add a header field (repeatable)")
    p.add_argument("--raw", metavar="FILE", type=Path,
                   help="send this prepared message as it is (- for standard input); --to/--cc/--bcc "
                        "give the envelope")
    p.add_argument("--server", metavar="HOST:PORT",
                   help="where to submit (default: the sender's submission host in the running lab)")
    p.add_argument("--auth", metavar="USER[:PASS]", nargs="?", const="",
                   help="log in (AUTH PLAIN or LOGIN); USER defaults to the sender, PASS to the world's "
                        "password of that user, else it is asked")
    way = p.add_mutually_exclusive_group()
    way.add_argument("--tls", action="store_const", dest="tls", const="starttls",
                     help="require STARTTLS (fail if not offered or the certificate does not verify)")
    way.add_argument("--tls-on-connect", action="store_const", dest="tls", const="tls",
                     help=f"TLS from the first octet (RFC 8314), to port {ports.smtps} by default")
    way.add_argument("--no-tls", action="store_const", dest="tls", const="plain",
                     help="never STARTTLS (the password, if any, crosses the wire readable)")
    p.add_argument("--ca", metavar="FILE", type=Path,
                   help="trust this CA certificate (default: the lab CA of the state folder)")
    p.add_argument("--helo", metavar="NAME", default=socket.gethostname(),
                   help="the name to give in EHLO (default: this machine's name)")
    p.add_argument("--timeout", metavar="SECONDS", type=float, default=30.0, help="per read and write (default 30)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    p.add_argument("--state", metavar="DIR", type=Path,
                   help=f"state folder of the lab (default: {default_state_path()})")


def cmd_send(args: argparse.Namespace) -> int:
    sender = _bare(args.sender, "--from")
    recipients = args.to + args.cc + args.bcc
    if not recipients:
        raise UserError("no recipient: give --to, --cc or --bcc")
    lab = _running_lab(StateDir(args.state))
    message, rcpts = _message(args, sender)
    server = _server(args, sender, lab)
    credentials = _credentials(args, sender, lab)
    tls: TlsWay = args.tls or "may"

    def echo(marker: str, text: str) -> None:
        print(f"{marker} {text}", flush=True)

    result = asyncio.run(submit(server, sender, rcpts, message, tls=tls, context=_context(args),
                                helo=args.helo, credentials=credentials, timeout=args.timeout,
                                on_line=None if args.quiet else echo))
    outcome = verdict(result, rcpts)
    if outcome.status:
        print(f"maillab: {outcome.line}", file=sys.stderr)
    elif not args.quiet:
        print(f"=== {outcome.line}")
    return outcome.status


def _bare(address: str, option: str) -> str:
    bare = parseaddr(address)[1]
    if not bare or "@" not in bare or any(c in address for c in "\r\n\0"):
        raise UserError(f"{option} {address!r}: not a mail address (like santa@northpole.org)")
    return bare


def _running_lab(state: StateDir) -> dict[str, Any] | None:
    """The running lab's info and hosts, None if no lab runs on the state folder."""
    sock = socket_path(state.root)
    try:
        info = call(sock, "lab.info", timeout=5)
        return {**info, "hosts": call(sock, "hosts.list", timeout=5)}
    except NotRunning:
        return None


def _read(path: Path, what: str) -> bytes:
    if str(path) == "-":
        data = sys.stdin.buffer.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            raise UserError(f"{what} from standard input: bigger than {MAX_FILE >> 20} MB")
        return data
    try:
        if path.stat().st_size > MAX_FILE:
            raise UserError(f"{what} {path}: bigger than {MAX_FILE >> 20} MB")
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"{what} {path}: {e.strerror}") from None


def _message(args: argparse.Namespace, sender: str) -> tuple[bytes, tuple[str, ...]]:
    """The message's octets and the envelope's recipients."""
    if args.raw is not None:
        if args.subject or args.body or args.attach or args.header:
            raise UserError("--raw sends the file as it is: no --subject, --body, --attach or --header with it")
        rcpts = tuple(dict.fromkeys(_bare(a, "--to/--cc/--bcc") for a in args.to + args.cc + args.bcc))
        return _read(args.raw, "--raw"), rcpts
    headers = []
    for field in args.header:
        name, colon, value = field.partition(":")
        if not colon or not name.strip() or any(c in name for c in " \t"):
            raise UserError(f"--header {field!r}: give it as 'Name: value'")
        headers.append((name.strip(), value.strip()))
    body = args.body
    if body is None:
        body = sys.stdin.read() if not sys.stdin.isatty() else "This is a test mailing\n"
    attachments = tuple(Attachment(path.name, _read(path, "--attach")) for path in args.attach)
    draft = Draft(sender=args.sender, to=tuple(args.to), cc=tuple(args.cc), bcc=tuple(args.bcc),
                  subject=args.subject if args.subject is not None else f"test {formatdate(localtime=True)}",
                  body=body, attachments=attachments, headers=tuple(headers))
    try:
        message = build(draft)
        _, rcpts = envelope(draft)
    except ValueError as e:
        raise UserError(str(e)) from None
    return message, rcpts


def _server(args: argparse.Namespace, sender: str, lab: dict[str, Any] | None) -> Server:
    service = "smtps" if args.tls == "tls" else "submission"
    if args.server:
        host, colon, port = args.server.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"--server {args.server!r}: give it as HOST:PORT, like 127.0.0.1:2587")
        known = {h["name"]: h["address"] for h in lab["hosts"]} if lab else {}
        return Server(known.get(host.lower(), host), int(port), host)
    if lab is None:
        raise UserError(f"no lab is running on {StateDir(args.state).root}: start one (maillab serve), "
                        "or give --server HOST:PORT")
    domain = sender.rpartition("@")[2].lower()
    for h in lab["hosts"]:
        if domain in h["domains"]:
            for s in h["services"]:
                name, _, port = s.partition(":")
                if name == service:
                    return Server(h["address"], int(port), h["name"])
            raise UserError(f"{h['name']} offers no {service} port (is it down?)")
    raise UserError(f"{domain} has no mailbox host in this lab: give --server HOST:PORT")


def _credentials(args: argparse.Namespace, sender: str, lab: dict[str, Any] | None) -> Credentials | None:
    if args.auth is None:
        return None
    user, colon, password = args.auth.partition(":")
    user = user or sender
    if colon:
        return Credentials(user, password)
    if lab is not None:
        try:
            return Credentials(user, find(load_world(lab["world"]), user).password)
        except KeyError:
            pass
    if not sys.stdin.isatty():
        raise UserError(f"--auth {user}: give the password as --auth {user}:PASSWORD")
    return Credentials(user, getpass.getpass(f"Password for {user}: "))


def _context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """A verifying client context: the CA of --ca, else the lab CA, else the system's CAs."""
    ca = args.ca or LabCA(StateDir(args.state).tls_dir).cert_path
    if args.ca is None and not ca.exists():
        return ssl.create_default_context()
    try:
        return client_context(ca)
    except (OSError, ssl.SSLError) as e:
        raise UserError(f"--ca {ca}: not a CA certificate ({getattr(e, 'strerror', None) or e})") from None
