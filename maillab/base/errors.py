"""The one base of every error a user should see as one line: `maillab: <message>`.

World, state, lab-start and control errors derive from `UserError`; the CLI
prints them and exits 1.  Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An error whose str() is one clear line for the user."""
