"""The Mail screen (key m): the lab's own mail client, over the lab's own protocols, X-rayed.

It is a real IMAP client of the identity's mailbox host (STARTTLS, verified
against the lab CA, then LOGIN): folders with unread counts (LIST, STATUS),
the message list fetched in pages (UID SEARCH, UID FETCH of the header
fields a list shows), IDLE between commands so new mail appears at once; a
reading pane with badges (TLS on every hop? an authenticated sender?), the
short or full header, the Received chain hop by hop, the MIME tree, the text
(HTML as text) or the raw source; flags, move, delete and expunge;
compose, reply, reply-all and forward, reviewed before sending (envelope
beside header, the dialogue to come, the MX by DNS), submitted over
submission with STARTTLS and AUTH, then APPENDed to Sent; drafts to Drafts.

Every line the client says or hears goes to the X-ray pane as it happens,
explained, under the user action that caused it.  The server side of each
session shows in the Dialogues panel like any other client's.

One IMAP connection does it all: a user action stops the IDLE (DONE), runs
its commands, and the IDLE resumes once no action is in progress.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static

from ...lab.ca import LabCA
from ...mua.compose import Draft, build, envelope, forward, reply
from ...mua.identity import Identity, identities
from ...mua.imap_client import ImapClient, ImapError, Summary
from ...mua.imap_protocol import Exists, Expunge
from ...mua.pop3_client import Pop3Client, Pop3Error
from ...mua.reading import headers, mime_tree, save_attachment, text, verdicts
from ...mua.review import review, route
from ...mua.threads import Links, thread
from ...mua.submit import Server, submit, verdict
from ...net.tls import client_context
from ...smtp.client_protocol import Credentials
from ..fmt import size
from ..forms import Field, FormScreen, HelpScreen
from ..journey import hops
from ..keybar import KeyBar
from ..rowlist import RowList
from .dialogs import ComposeScreen, IdentityScreen, ReviewScreen
from .xray import XRay

if TYPE_CHECKING:
    from ...lab.supervisor import Lab

PAGE = 200                       # messages fetched in one UID FETCH
FIRST_PAGE = 60                  # the newest ones, fetched first: the first screen comes before the rest
FOLDER_COLUMNS = ("folder", "unread", "all")
LIST_COLUMNS = ("", "badges", "from", "subject", "date", "size")


def badges(header: bytes) -> tuple[str, str]:
    """(short, long) badges of a message from its Received chain — over TLS on every hop, and
    whether the first hop took it from an authenticated sender (RFC 3848's ESMTPS / ESMTPSA) —
    and what the receiving host concluded of its sender (Authentication-Results: SPF, ...)."""
    chain = hops(header)
    if not chain:
        return "", "no Received header: never crossed SMTP"
    tls = all(h.tls for h in chain)
    auth = chain[0].authenticated
    checked_by, results = verdicts(header)
    short = " ".join(["TLS" if tls else "plain", *(["auth"] if auth else []),
                      *(f"{method}={result}" for method, result in results.items())])
    long = (f"{'over TLS on every hop' if tls else 'NOT over TLS on every hop'} ({len(chain)} hops) · "
            + ("sender authenticated at submission (ESMTPSA)" if auth else "sender not authenticated")
            + (" · " + ", ".join(f"{m.upper()} {r}" for m, r in results.items()) + f" (said {checked_by})"
               if results else ""))
    return short, long


HELP = """\
# The Mail screen — the lab's own mail client

A real client of the identity's mail host: IMAP with STARTTLS (the certificate
verified against the lab CA), then LOGIN; mail is sent by SMTP submission
(port {submission}) with STARTTLS and AUTH, and a copy is APPENDed to Sent.
The X-ray at the bottom shows, live, every command the client sends for what
you just did, explained; the server's side of each session is in Dialogues.

| key | does |
|---|---|
| `i` | who you are: any user of the world (the lab knows the passwords) |
| Enter | open the folder or message under the cursor (`Tab` moves between panes) |
| `c` / `r` / `R` / `f` | compose, reply, reply to all, forward (`Ctrl+E` in the body: `$EDITOR`; `Ctrl+R` review; `Ctrl+D` save the draft) |
| `u` / `s` | mark read or unread; flag |
| `d` / `x` | mark deleted (IMAP `\\Deleted`, POP3 `DELE`); expunge (POP3: QUIT, when DELE takes effect) |
| `M` | move the message to another folder |
| `t` | threads by References (replies indented under what they answer, the newest thread first) or flat, newest first |
| `h` / `v` | the full header; the raw source |
| `a` | save the attachments |
| `p` | IMAP or POP3 for the same account: POP3 has one maildrop, no folders, no flags |
| Esc | back to the panels |

Badges: `TLS` when every hop's Received says ESMTPS (RFC 3848), `auth` when the
first hop took it from a logged-in sender (ESMTPSA), `spf=pass`/`spf=fail`/...
as the receiving host wrote in Authentication-Results (RFC 8601): may the
client's address send mail for the envelope sender's domain (RFC 7208)?
"""


class MailScreen(Screen[None]):
    DEFAULT_CSS = """
    MailScreen #mail-who { height: 1; background: $boost; padding: 0 1; }
    MailScreen #mail-main { height: 2fr; }
    MailScreen #mail-folders { width: 26; border-right: solid $accent; }
    MailScreen #mail-right { width: 1fr; }
    MailScreen #mail-list { height: 1fr; min-height: 4; }
    MailScreen #mail-reader-box { height: 1fr; border-top: solid $accent; }
    MailScreen #mail-xray { height: 1fr; min-height: 4; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("c", "compose", "Compose"),
        Binding("r", "reply(False)", "Reply"),
        Binding("R", "reply(True)", "Reply all"),
        Binding("f", "forward", "Forward"),
        Binding("u", "toggle_seen", "Unread"),
        Binding("s", "toggle_flag", "Flag"),
        Binding("d", "delete", "Delete"),
        Binding("x", "expunge", "Expunge", show=False),
        Binding("M", "move", "Move", show=False),
        Binding("h", "toggle_headers", "Headers"),
        Binding("v", "toggle_source", "Source", show=False),
        Binding("a", "save_attachments", "Save att.", show=False),
        Binding("t", "toggle_threads", "Threads", show=False),
        Binding("i", "identity", "Identity"),
        Binding("p", "toggle_protocol", "IMAP/POP3"),
        Binding("tab", "focus_next_pane", "Next pane", show=False),
        Binding("question_mark,f1", "help", "Help"),
    ]

    def __init__(self, lab: "Lab", identity: Identity | None = None) -> None:
        super().__init__()
        self.lab = lab
        self.identity = identity
        self.client: ImapClient | None = None
        self.protocol = "IMAP"
        self.pop: Pop3Client | None = None
        self.pop_marked: set[int] = set()                  # DELE said: gone at QUIT
        self.folder = ""
        self.summaries: dict[int, Summary] = {}
        self._links: dict[int, Links] = {}                 # what each message answers (threads)
        self._cells: dict[int, tuple[str, ...]] = {}       # its row, before the thread's indent
        self._depth: dict[int, int] = {}                   # its depth in its thread
        self.threaded = True
        self.current: tuple[int, bytes] | None = None      # the message open in the reader
        self.full_headers = False
        self.source = False
        self.recent: list[str] = []                        # correspondents, for completion
        self._idle_ok = asyncio.Event()
        self._stop = asyncio.Event()
        self._busy = 0
        self._idler: asyncio.Task[None] | None = None
        self.status = ""
        self._closing = False

    # --- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("", id="mail-who", markup=False)
        with Horizontal(id="mail-main"):
            yield RowList(FOLDER_COLUMNS, id="mail-folders")
            with Vertical(id="mail-right"):
                yield RowList(LIST_COLUMNS, id="mail-list",
                              shrink=(("badges", 0), ("size", 0), ("date", 0), ("from", 14)))
                with VerticalScroll(id="mail-reader-box"):
                    yield Static("", id="mail-reader", markup=False)
        yield XRay(id="mail-xray")
        yield KeyBar()

    def on_mount(self) -> None:
        self._say("choose who you are (i)" if self.identity is None else f"connecting as {self.identity.address}…")
        if self.identity is None:
            self.action_identity()
        else:
            self.run_worker(self.switch(self.identity), group="mail", exit_on_error=False)

    async def on_unmount(self) -> None:
        self._closing = True
        await self._disconnect()

    @property
    def xray(self) -> XRay:
        return self.query_one("#mail-xray", XRay)

    def _say(self, status: str) -> None:
        self.status = status
        if self._closing:
            return
        who = f"{self.identity.from_header} on {self.identity.host}" if self.identity else "(nobody yet)"
        where = f" · {self.folder}" if self.folder else ""
        self.query_one("#mail-who", Static).update(f"✉ {who} · {self.protocol}{where} · {status}")

    def _line(self, protocol: str) -> Callable[[str, str], None]:
        def line(direction: str, text_: str) -> None:
            if not self._closing:           # a LOGOUT as the screen closes: no X-ray to show it
                self.xray.line(protocol, direction, text_)
        return line

    def _tls_context(self) -> ssl.SSLContext:
        return client_context(LabCA(self.lab.state.tls_dir).cert_path)

    # --- the connection -------------------------------------------------------------------
    async def switch(self, identity: Identity) -> None:
        """Log out of the old identity's server, in to the new one's, and open its INBOX."""
        await self._disconnect()
        self.identity = identity
        self._empty_list("")
        self.query_one("#mail-reader", Static).update("")
        self.xray.action(f"log in as {identity.address} at {identity.host} (IMAP, STARTTLS)")
        self.xray.session("imap")
        try:
            self.client = await ImapClient.connect(
                identity.host_address, self.lab.ports.imap, tls="starttls", context=self._tls_context(),
                server_hostname=identity.host, on_line=self._line("imap"))
            await self.client.login(identity.address, identity.password)
        except ImapError as e:
            self.client = None
            self._say(f"not connected: {e}")
            return
        await self.load_folders()
        await self.open_folder("INBOX")
        self._idle_ok.set()
        self._idler = asyncio.ensure_future(self._idle_loop())

    async def _disconnect(self) -> None:
        pop, self.pop = self.pop, None
        if pop is not None:
            await self._pop_quit(pop)
        client, self.client = self.client, None
        idler, self._idler = self._idler, None
        if idler is not None:               # DONE, so the server hears LOGOUT as a command
            self._stop.set()
            self._idle_ok.set()
            try:
                await asyncio.wait_for(idler, 5)
            except (TimeoutError, ImapError):
                pass
        if client is not None:
            await client.logout()

    async def _idle_loop(self) -> None:
        """IDLE whenever no action runs; apply the server's news as it comes."""
        while self.client is not None:
            await self._idle_ok.wait()
            client = self.client
            if client is None:
                return
            self._stop = asyncio.Event()
            try:
                news = await client.idle(self._stop)
            except ImapError as e:
                self._say(f"connection lost: {e} (i: log in again)")
                self.client = None
                return
            if any(isinstance(e, Expunge) for e in news):
                await self._do("messages went: the server said so during IDLE", self._refresh)
            elif any(isinstance(e, Exists) for e in news):
                await self._do("new mail: the server said so during IDLE", lambda: self._refresh(expunged=False))

    async def _do(self, what: str, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run one user action's commands: the IDLE stopped first, resumed after."""
        if self._closing:
            return None
        if self.client is None and self.pop is None:
            self._say("not connected (i: choose who you are)")
            return None
        self.xray.action(what)
        self._busy += 1
        self._idle_ok.clear()
        self._stop.set()
        try:
            return await work()
        except (ImapError, Pop3Error) as e:
            self._say(str(e))
            self.notify(str(e), severity="error")
            return None
        except NoMatches:
            if self._closing:               # the screen went while the server answered
                return None
            raise
        finally:
            self._busy -= 1
            if self._busy == 0 and self.client is not None:
                self._idle_ok.set()

    # --- folders and the list ---------------------------------------------------------------
    async def load_folders(self) -> None:
        client = self.client
        if client is None:                  # logged out meanwhile (another identity, POP3, closing)
            return
        rows = {}
        for f in await client.folders():
            if not f.selectable:
                continue
            counts = await client.status(f.name)
            rows[f.name] = (f.name, str(counts.get("UNSEEN", 0) or ""), str(counts.get("MESSAGES", 0)))
        self.query_one("#mail-folders", RowList).replace(rows)

    async def open_folder(self, name: str) -> None:
        """SELECT, then the newest page of the list at once and the rest page by page."""
        assert self.client is not None
        selected = await self.client.select(name)
        self._empty_list(name)
        uids = await self.client.uids()
        newest, older = uids[-FIRST_PAGE:], uids[:-FIRST_PAGE]
        self._add(await self.client.summaries(newest))
        self._say(f"{selected.exists} messages")
        for end in range(len(older), 0, -PAGE):
            self._add(await self.client.summaries(older[max(0, end - PAGE):end]), lay_out=False)
        if older:
            self._layout()

    async def _refresh(self, expunged: bool = True) -> None:
        """The selected folder again: new UIDs fetched (only those above the newest held, when
        nothing was expunged), gone ones dropped, counts updated."""
        client = self.client
        if client is None:
            return
        listing = self.query_one("#mail-list", RowList)
        if expunged:
            uids = await client.uids()
            for uid in set(self.summaries) - set(uids):
                self._forget(uid)
                listing.remove(str(uid))
            new = [u for u in uids if u not in self.summaries]
        else:
            new = await client.uids(after=max(self.summaries, default=0))
        self._arrived(await client.summaries(new))
        await self.load_folders()
        self._say(f"{len(self.summaries)} messages")

    def _arrived(self, found: list[Summary]) -> None:
        """New mail on top of the list, without laying the rest out again — unless it joins a
        thread the list shows (it answers one of them, or one of them answers it)."""
        if not found:
            return
        ids = {links.message_id for links in self._links.values() if links.message_id}
        answered = {ref for links in self._links.values() for ref in links.answers}
        for s in found:
            self._keep(s)
        joins = self.threaded and any(set(self._links[s.uid].answers) & ids
                                      or self._links[s.uid].message_id in answered for s in found)
        if joins:
            self._layout()
            return
        listing = self.query_one("#mail-list", RowList)
        with listing.batch():
            for s in sorted(found, key=lambda s: s.uid):
                self._depth[s.uid] = 0
                listing.upsert(str(s.uid), self._shown(s.uid), first=True)

    def _add(self, found: list[Summary], lay_out: bool = True) -> None:
        """Rows for `found`; laid out again (threads) unless `lay_out` is False, when they go at
        the end (older pages while a folder loads: the threads are made once it has loaded)."""
        for s in found:
            self._keep(s)
        if lay_out:
            self._layout()
            return
        listing = self.query_one("#mail-list", RowList)
        with listing.batch():
            for s in sorted(found, key=lambda s: s.uid, reverse=True):
                listing.upsert(str(s.uid), self._shown(s.uid))

    def _empty_list(self, folder: str) -> None:
        """A new folder (or maildrop) opens: nothing listed, nothing open."""
        self.folder, self.current = folder, None
        for held in self._per_message:
            held.clear()
        self.query_one("#mail-list", RowList).clear()

    def _keep(self, s: Summary) -> None:
        fields = s.fields()
        self.summaries[s.uid] = s
        self._links[s.uid] = Links.of(fields.get("message-id", ""), fields.get("references", ""),
                                      fields.get("in-reply-to", ""))
        marks = ("N" if not s.seen else " ") + ("!" if "\\Flagged" in s.flags else " ") + \
                ("D" if "\\Deleted" in s.flags else " ")
        self._cells[s.uid] = (marks, badges(s.header)[0], fields.get("from", "")[:40],
                              fields.get("subject") or "(no subject)", fields.get("date", "")[:22], size(s.size))

    @property
    def _per_message(self) -> tuple[dict[int, Any], ...]:
        return self.summaries, self._links, self._cells, self._depth

    def _forget(self, uid: int) -> None:
        for held in self._per_message:
            held.pop(uid, None)

    def _shown(self, uid: int) -> tuple[str, ...]:
        """A row's cells, its subject indented under the message it answers."""
        cells, depth = self._cells[uid], self._depth.get(uid, 0)
        if not depth:
            return cells
        return (*cells[:3], "  " * min(depth - 1, 8) + "└ " + cells[3], *cells[4:])

    def _layout(self) -> None:
        """The list in its order: threads by References, newest thread first (t: flat, newest first)."""
        if self.threaded:
            order = thread((uid, self._links[uid]) for uid in sorted(self.summaries))
        else:
            order = [(uid, 0) for uid in sorted(self.summaries, reverse=True)]
        self._depth = dict(order)
        self.query_one("#mail-list", RowList).replace({str(uid): self._shown(uid) for uid, _ in order})

    def _flags_now(self, uid: int, flags: tuple[str, ...]) -> None:
        """A message's flags changed (by us): its summary and row follow."""
        s = self.summaries[uid]
        self._keep(Summary(uid, flags, s.size, s.header))
        self.query_one("#mail-list", RowList).upsert(str(uid), self._shown(uid))

    def action_toggle_threads(self) -> None:
        self.threaded = not self.threaded
        self._layout()
        self._say("threads by References" if self.threaded else "flat: newest first")

    # --- events from the lists ---------------------------------------------------------------
    def on_row_list_selected(self, event: RowList.Selected) -> None:
        event.stop()
        if event.control.id == "mail-folders":
            self.run_worker(self._do(f"open folder {event.key}", lambda: self.open_folder(event.key)),
                            group="mail", exit_on_error=False)
        elif event.control.id == "mail-list" and self.pop is not None:
            number = int(event.key)
            self.run_worker(self._do(f"download message {number} (RETR)", lambda: self._pop_retr(number)),
                            group="mail", exit_on_error=False)
        elif event.control.id == "mail-list":
            uid = int(event.key)
            self.run_worker(self._do(f"open message UID {uid}", lambda: self.open_message(uid)),
                            group="mail", exit_on_error=False)

    async def open_message(self, uid: int) -> None:
        assert self.client is not None
        raw = await self.client.message(uid)
        s = self.summaries.get(uid)
        if s is not None and not s.seen:
            await self.client.store(uid, ["\\Seen"])
            self._flags_now(uid, (*s.flags, "\\Seen"))
        self.current = (uid, raw)
        for _name, value in headers(raw):
            if _name == "From" and value not in self.recent:
                self.recent.insert(0, value)
        self.render_message()

    def render_message(self) -> None:
        reader = self.query_one("#mail-reader", Static)
        if self.current is None:
            reader.update("")
            return
        uid, raw = self.current
        if self.source:
            reader.update(Text(raw.decode("utf-8", "replace").replace("\r\n", "\n")))
            return
        _short, long = badges(raw.split(b"\r\n\r\n", 1)[0])
        out = Text()
        out.append(f"{long}\n", style="bold")
        for name, value in headers(raw, full=self.full_headers):
            out.append(f"{name}: ", style="bold")
            out.append(f"{value}\n")
        chain = hops(raw.split(b"\r\n\r\n", 1)[0])
        if chain:
            out.append("\nReceived, hop by hop:\n", style="bold")
            for n, hop in enumerate(chain, 1):
                out.append(f"  {n}. {hop.helo or '?'} [{hop.client_ip or '?'}] → {hop.by} with {hop.protocol}"
                           + (f" id {hop.queue_id}" if hop.queue_id else "") + "\n")
        tree = mime_tree(raw)
        if len(tree) > 1:
            out.append("\nMIME structure:\n", style="bold")
            for part in tree:
                name = f' "{part.filename}"' if part.filename else ""
                out.append(f"  {'  ' * part.depth}{part.path or '·'} {part.content_type}{name} {size(part.size)}\n")
        out.append("\n" + text(raw))
        reader.update(out)

    # --- POP3 mode -------------------------------------------------------------------------------
    async def _pop_open(self) -> None:
        """POP3: log in over STLS, list the maildrop (LIST, UIDL), the headers by TOP n 0."""
        assert self.identity is not None
        identity = self.identity
        self.xray.action(f"POP3: log in as {identity.address} at {identity.host} (STLS), list the maildrop")
        self.xray.session("pop3")
        self.pop_marked = set()
        pop = await Pop3Client.connect(identity.host_address, self.lab.ports.pop3, tls="starttls",
                                       context=self._tls_context(), server_hostname=identity.host,
                                       on_line=self._line("pop3"))
        await pop.login(identity.address, identity.password)
        self.pop = pop
        entries = await pop.listing()
        self._empty_list("INBOX")
        self.query_one("#mail-folders", RowList).replace({"INBOX": ("INBOX (the maildrop)", "", str(len(entries)))})
        found = [Summary(e.number, ("\\Seen",), e.size, await pop.top(e.number)) for e in entries[-FIRST_PAGE:]]
        self._add(found)
        self._say(f"{len(entries)} messages on the server; POP3 has no folders and no flags, and "
                  "deletes only what DELE marked, at QUIT")

    async def _pop_retr(self, number: int) -> None:
        assert self.pop is not None
        self.current = (number, await self.pop.retr(number))
        self.render_message()

    async def _pop_quit(self, pop: Pop3Client) -> None:
        if self.pop_marked and not self._closing:
            self.xray.action(f"QUIT: the server now deletes the {len(self.pop_marked)} message(s) DELE marked")
        try:
            await pop.quit()
        except Pop3Error:
            await pop.close()
        self.pop_marked = set()

    def action_toggle_protocol(self) -> None:
        if self.identity is None:
            return
        identity = self.identity

        async def work() -> None:
            try:
                if self.protocol == "IMAP":
                    await self._disconnect()
                    self.protocol = "POP3"
                    await self._pop_open()
                else:
                    self.protocol = "IMAP"
                    await self.switch(identity)
            except Pop3Error as e:
                self._say(f"POP3: {e}")
        self.run_worker(work(), group="mail", exit_on_error=False)

    def _imap_only(self, what: str) -> bool:
        """In POP3 mode, say that `what` is IMAP's; True if so."""
        if self.pop is None:
            return False
        self.notify(f"{what}: POP3 has no such thing — the server keeps one maildrop, no folders, no "
                    "flags. That is what IMAP adds (p: back to IMAP).")
        return True

    # --- actions --------------------------------------------------------------------------------
    def action_close(self) -> None:
        self.app.pop_screen()               # unmounted: on_unmount logs out

    def action_identity(self) -> None:
        def chosen(identity: Identity | None) -> None:
            if identity is not None:
                self.run_worker(self.switch(identity), group="mail", exit_on_error=False)
        self.app.push_screen(IdentityScreen(identities(self.lab.world)), chosen)

    def _known_addresses(self) -> list[str]:
        return [*self.recent, *(i.from_header for i in identities(self.lab.world))]

    def action_compose(self) -> None:
        if self.identity is not None:
            self._edit(Draft(self.identity.from_header), "New message")

    def action_reply(self, to_all: bool) -> None:
        if self.identity is not None and self.current is not None:
            self._edit(reply(self.current[1], self.identity.from_header, to_all=to_all),
                       "Reply to all" if to_all else "Reply")

    def action_forward(self) -> None:
        if self.identity is not None and self.current is not None:
            self._edit(forward(self.current[1], self.identity.from_header), "Forward")

    def _edit(self, draft: Draft, title: str) -> None:
        def done(result: tuple[str, Draft] | None) -> None:
            if result is None:
                return
            how, edited = result
            if how == "draft":
                self.run_worker(self._do("save the draft in Drafts", lambda: self._append("Drafts", edited,
                                ["\\Draft", "\\Seen"])), group="mail", exit_on_error=False)
            else:
                self.run_worker(self._review(edited), group="mail", exit_on_error=False)
        self.app.push_screen(ComposeScreen(draft, self._known_addresses(), title), done)

    async def _append(self, folder: str, draft: Draft, flags: list[str], message: bytes | None = None) -> None:
        assert self.client is not None
        await self.client.append(folder, message if message is not None else build(draft), flags)
        await self.load_folders()
        if self.folder == folder:
            await self._refresh()

    async def _review(self, draft: Draft) -> None:
        assert self.identity is not None and self.lab.ctx is not None
        try:
            message = build(draft)
        except ValueError as e:
            self.notify(str(e), severity="error")
            return
        identity = self.identity
        server = f"{identity.host} [{identity.host_address}]:{self.lab.ports.submission}"
        shown = review(draft, message, server=server, tls="starttls", login=identity.address)
        routes = await route(self.lab.ctx.resolver, shown.rcpt_to, identity.host_address)

        def answered(send: bool | None) -> None:
            if send:
                self.run_worker(self._send(draft, message), group="mail", exit_on_error=False)
        self.app.push_screen(ReviewScreen(shown, routes), answered)

    async def _send(self, draft: Draft, message: bytes) -> None:
        assert self.identity is not None
        identity = self.identity
        sender, rcpts = envelope(draft)
        self.xray.action(f"send to {', '.join(rcpts)} (SMTP submission, STARTTLS, AUTH)")
        self.xray.session("submission")
        result = await submit(Server(identity.host_address, self.lab.ports.submission, identity.host),
                              sender, rcpts, message, tls="starttls", context=self._tls_context(),
                              helo=identity.host, credentials=Credentials(identity.address, identity.password),
                              on_line=lambda marker, line: self.xray.line(
                                  "submission", "client" if ">" in marker else "server" if "<" in marker
                                  else "note", line))
        outcome = verdict(result, rcpts)
        if outcome.status:
            self._say(outcome.line)
            self.notify(outcome.line, severity="error", title="not sent")
            return
        for r in rcpts:
            if r not in self.recent:
                self.recent.insert(0, r)
        self.notify(outcome.line, title="sent")
        if self.client is not None:
            await self._do("keep a copy in Sent (APPEND)", lambda: self._append("Sent", draft, ["\\Seen"], message))
        else:
            self.xray.action("no copy in Sent: POP3 has no folders on the server (IMAP's APPEND keeps one)")
        self._say(outcome.line)

    def _selected_uid(self) -> int | None:
        row = self.query_one("#mail-list", RowList)
        keys = row.keys()
        return int(keys[row.cursor_row]) if keys else None

    def _flag(self, what: str, flag: str) -> None:
        if self._imap_only(what.rstrip(":")):
            return
        uid = self._selected_uid()
        if uid is None or uid not in self.summaries:
            return
        s = self.summaries[uid]
        add = flag not in s.flags

        async def work() -> None:
            assert self.client is not None
            await self.client.store(uid, [flag], add=add)
            self._flags_now(uid, (*s.flags, flag) if add else tuple(f for f in s.flags if f != flag))
            await self.load_folders()
        self.run_worker(self._do(f"{what} UID {uid}", work), group="mail", exit_on_error=False)

    def action_toggle_seen(self) -> None:
        self._flag("mark read/unread:", "\\Seen")

    def action_toggle_flag(self) -> None:
        self._flag("flag/unflag:", "\\Flagged")

    def action_delete(self) -> None:
        if self.pop is None:
            self._flag("mark deleted (x expunges):", "\\Deleted")
            return
        number = self._selected_uid()
        if number is None or number in self.pop_marked:
            return

        async def work() -> None:
            assert self.pop is not None
            await self.pop.dele(number)
            self.pop_marked.add(number)
            self._flags_now(number, (*self.summaries[number].flags, "\\Deleted"))
            self._say(f"{len(self.pop_marked)} marked by DELE: the server deletes them at QUIT (x)")
        self.run_worker(self._do(f"DELE {number}: mark it; nothing is deleted before QUIT", work), group="mail",
                        exit_on_error=False)

    def action_expunge(self) -> None:
        if self.pop is not None:
            async def quit_and_list() -> None:
                pop, self.pop = self.pop, None
                assert pop is not None
                await self._pop_quit(pop)
                await self._pop_open()
            self.run_worker(self._do("QUIT (the UPDATE state: DELE takes effect), then log in again",
                                     quit_and_list), group="mail", exit_on_error=False)
            return

        async def work() -> None:
            assert self.client is not None
            await self.client.expunge()
            await self._refresh()
        self.run_worker(self._do("expunge: remove the messages marked deleted", work), group="mail",
                        exit_on_error=False)

    def action_move(self) -> None:
        if self._imap_only("move"):
            return
        uid = self._selected_uid()
        folders = tuple(k for k in self.query_one("#mail-folders", RowList).keys() if k != self.folder)
        if uid is None or not folders:
            return

        def chosen(values: dict[str, str] | None) -> None:
            if not values:
                return

            async def work() -> None:
                assert self.client is not None
                await self.client.move(uid, values["folder"])
                await self._refresh()
            self.run_worker(self._do(f"move UID {uid} to {values['folder']}", work), group="mail",
                            exit_on_error=False)
        self.app.push_screen(FormScreen("Move the message to", [Field("folder", "Folder:", folders[0], folders)],
                                        ok="Move"), chosen)

    def action_toggle_headers(self) -> None:
        self.full_headers = not self.full_headers
        self.render_message()

    def action_toggle_source(self) -> None:
        self.source = not self.source
        self.render_message()

    def action_save_attachments(self) -> None:
        if self.current is None:
            return
        raw = self.current[1]
        parts = [p for p in mime_tree(raw) if p.disposition == "attachment" or p.filename]
        if not parts:
            self.notify("This message has no attachment.")
            return
        default = str(self.lab.state.root / "downloads")

        def chosen(values: dict[str, str] | None) -> None:
            if not values:
                return
            folder = Path(values["folder"]).expanduser()
            try:
                folder.mkdir(parents=True, exist_ok=True)
                saved = [save_attachment(raw, p.path, folder) for p in parts]
            except OSError as e:
                self.notify(f"{folder}: {e.strerror}", severity="error")
                return
            self.notify("saved " + ", ".join(str(p) for p in saved))
        self.app.push_screen(FormScreen("Save the attachments", [Field("folder", "Into the folder:", default)],
                                        ok="Save"), chosen)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(HELP.format(submission=self.lab.ports.submission)))

    def action_focus_next_pane(self) -> None:
        order = [self.query_one("#mail-folders"), self.query_one("#mail-list"), self.query_one("#mail-reader-box")]
        focused = self.focused
        index = next((n for n, w in enumerate(order) if focused is not None and w in focused.ancestors_with_self), -1)
        order[(index + 1) % len(order)].focus()
