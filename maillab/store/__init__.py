"""The mail store: Maildir++ mailboxes that IMAP, POP3, the MDA and the TUI share.

Layering: below the servers, above the file system; no asyncio except
`MailStore.publish` handing events to the loop, no protocol parsing.

    store = MailStore(state, bus, clock)          # one per lab, built on the loop thread
    user = store.user("mafudge@syr.edu")          # UserStore: folders, subscriptions
    inbox = user.folder("INBOX")                  # Folder: messages, flags, UIDs
    inbox.refresh()                               # catch up with mutt / outside deliveries
    recent = inbox.take_recent()                  # \\Recent: the first session to ask gets them
    for m in inbox.messages(): m.uid, m.flags, m.size
    inbox.store([uid], ["\\\\Seen"], "add")
    store.deliver("mafudge@syr.edu", data)        # blocking; the MDA drives deliver_steps

Where things live (one user):

    <state>/mail/<domain>/<local>/            the Maildir root = INBOX
        cur/ new/ tmp/                        messages; flags in ":2,<letters>"
        maillab-uidlist                       UIDVALIDITY, UIDs, MODSEQs, sizes (uidlist.py)
        maillab-keywords                      keyword ↔ letter a-z (flags.py)
        maillab-uidvalidity                   last UIDVALIDITY given out
        subscriptions                         subscribed mailbox names
        .Sent/ .Drafts/ .Trash/ .Junk/        special-use folders (RFC 6154)
        .A.B/                                 mailbox "A.B": hierarchy delimiter "."

Mailbox names are IMAP wire names (modified UTF-7, RFC 3501 §5.1.3); use
`encode_mutf7` for a human name.  Changes go on the bus as `MessagesAdded`,
`FlagsChanged`, `MessagesExpunged`, `MailboxCreated`, `MailboxDeleted`,
`MailboxRenamed` (maillab.base.events), after they are durable.

Blocking: every method that touches the disk blocks (microseconds to a few
ms; a cold open of a big folder up to a second).  From the loop, call them via
`asyncio.to_thread` when they may be slow: `MailStore.user` (first time),
`UserStore.folder` (first open of a folder), `deliver`, `append`, `copy`,
`move`, `expunge`, `remove`, `store` on many messages, `read` of big messages,
folder create/delete/rename.  Cheap enough for the loop: `Folder.messages`,
`get`, `status`, the counters, and `refresh` on an unchanged folder.  All of it
is thread-safe (one lock per user).
"""

from .errors import (FlagError, KeywordLimit, MailboxExists, MailboxNameError, MailboxNotAllowed,
                     MaildropBusy, MessageGone, NoSuchMailbox, StoreError)
from .flags import ANSWERED, DELETED, DRAFT, FLAGGED, FORWARDED, RECENT, SEEN, SYSTEM_FLAGS
from .folder import Folder, StoreMode
from .maildir import crlf_size, to_crlf, to_lf
from .mailstore import MaildropLock, MailStore
from .message import Changes, Delivery, FolderStatus, MailboxInfo, Message, StoreResult
from .names import DELIMITER, INBOX, check_name, decode_mutf7, encode_mutf7
from .user import SPECIAL_USE, UserStore

__all__ = [
    "MailStore", "UserStore", "Folder", "MaildropLock", "StoreMode",
    "Message", "FolderStatus", "MailboxInfo", "StoreResult", "Changes", "Delivery",
    "StoreError", "MailboxNameError", "NoSuchMailbox", "MailboxExists", "MailboxNotAllowed",
    "FlagError", "KeywordLimit", "MessageGone", "MaildropBusy",
    "SEEN", "ANSWERED", "FLAGGED", "DELETED", "DRAFT", "RECENT", "FORWARDED", "SYSTEM_FLAGS",
    "DELIMITER", "INBOX", "SPECIAL_USE", "check_name", "encode_mutf7", "decode_mutf7",
    "crlf_size", "to_crlf", "to_lf",
]
