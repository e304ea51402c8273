"""Sender authentication on the receive path: SPF (RFC 7208) now; DKIM and DMARC plug in beside it."""
