"""The MDA: final delivery of a message into a user's Maildir, through the mail store.

The MDA decides *what* is stored: the recipient's account (through aliases),
and the message with `Return-Path` and `Delivered-To` prepended (RFC 5321
§4.4), in LF line endings as Postfix and Dovecot store it.  The store decides
*how*: write into `tmp/`, fsync, rename into `new/`, fsync the folder, give the
message its UID and tell every IMAP session and the TUI (`MessagesAdded`).

Each file carries a delivery tag in its name (`delivery_tag`: queue ID and
recipient), so that a restart can tell a delivery already made from one to make
(`maillab.queue.redelivery`).

Addresses reach the file system only through the directory's account names,
which the store checks, so a recipient can not name a path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..base.fsutil import Steps
from ..lab.directory import Account, Directory
from ..store import MailStore


@dataclass(frozen=True, slots=True)
class LocalResult:
    ok: bool
    status: str        # enhanced status code
    detail: str
    path: str = ""
    mailbox: str = ""
    uid: int | None = None


def delivery_tag(queue_id: str, recipient: str) -> str:
    """What names one delivery in its Maildir file name: the queue ID and a digest of the
    recipient as given (two aliases of one mailbox are two deliveries)."""
    digest = hashlib.blake2s(recipient.lower().encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
    return f"{queue_id}-{digest}"


class Mda:
    def __init__(self, directory: Directory, store: MailStore) -> None:
        self.directory = directory
        self.store = store

    def account_for(self, recipient: str) -> Account | None:
        account = self.directory.resolve(recipient)
        return account if account is not None and account.enabled else None

    def deliver(self, account: Account, recipient: str, sender: str, message: bytes,
                queue_id: str = "") -> Steps[LocalResult]:
        """Durability steps (maillab.base.fsutil) that store one copy for `account`, tagged with
        `queue_id` and `recipient` when a queue ID is given."""
        head = f"Return-Path: <{sender}>\nDelivered-To: {account.address}\n".encode("utf-8", "surrogateescape")
        tag = delivery_tag(queue_id, recipient) if queue_id else ""
        delivery = yield from self.store.deliver_steps(account.address, head + message.replace(b"\r\n", b"\n"),
                                                       tag=tag)
        return LocalResult(True, "2.0.0", "delivered to maildir", str(delivery.path), delivery.mailbox, delivery.uid)
