"""The one base of every error a user should see as one line: `maillab: <message>`.

World, state, lab-start and control errors derive from `UserError`; the CLI
prints them and exits 1.  Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An error whose str() is one clear line for the user."""


def network_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words: "timed out", the OS's text ("Connection
    refused"), or the TLS library's."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
