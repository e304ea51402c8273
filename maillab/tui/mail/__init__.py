"""The TUI's Mail screen: the lab's built-in MUA over its own SMTP, IMAP and POP3, with the X-ray."""
