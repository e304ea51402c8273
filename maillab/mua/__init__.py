"""The MUA: the lab's own mail client — composing messages, submitting them over SMTP
(`maillab send`, the TUI's Mail screen) and reading mailboxes over IMAP and POP3."""
