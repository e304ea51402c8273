"""SMTP reply codes and their RFC 3463 enhanced status codes.

The lab offers ENHANCEDSTATUSCODES (RFC 2034), so every reply but the 220 greeting,
the answer to HELO/EHLO and the intermediate 3xx replies carries an enhanced
code after the basic one.  A reply may be written plain ("503 Error: need
MAIL command"); `enhance()` adds the code that fits, in one place, so every
reply of every server gets it.
"""

from __future__ import annotations

import re

_HAS_ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?:[ -]|$)")

# basic code -> enhanced code (RFC 3463 §3), for replies that come without one
_DEFAULTS: dict[str, str] = {
    "211": "2.0.0", "214": "2.0.0", "221": "2.0.0", "235": "2.7.0",
    "250": "2.0.0", "251": "2.1.5", "252": "2.5.0",
    "421": "4.3.0", "450": "4.2.0", "451": "4.3.0", "452": "4.3.1", "454": "4.7.0",
    "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4",
    "530": "5.7.0", "535": "5.7.8", "538": "5.7.11", "550": "5.1.1", "551": "5.1.6",
    "552": "5.3.4", "553": "5.1.3", "554": "5.0.0", "555": "5.5.4",
}


def enhance(reply: str) -> str:
    """Give `reply` (one line, no CRLF) an enhanced code if it lacks one and may have one."""
    code = reply[:3]
    if code[:1] not in ("2", "4", "5") or code == "220" or _HAS_ENHANCED.match(reply):
        return reply
    enhanced = _DEFAULTS.get(code)
    if enhanced is None:
        enhanced = f"{code[0]}.0.0"
    sep, text = reply[3:4] or " ", reply[4:]
    return f"{code}{sep}{enhanced} {text}" if text else f"{code}{sep}{enhanced}"


def enhanced_of(reply: str) -> str:
    """The enhanced code of a reply line ("5.1.1"), or "" if it has none."""
    m = _HAS_ENHANCED.match(reply)
    return reply[4:m.end()].strip() if m else ""
