"""The terminal UI: the lab you can watch (`maillab`, `maillab tui`).

`app.MailLabApp` is the Textual app; `panels/` holds its tabs, `panel.py`
what they share, `forms.py` and `keybar.py` its dialogs and footer.  The
modules the panels build on — `explain` (what a reply code or command
means), `sessions`, `journey`, `metrics`, `fmt` — import no Textual, so they
are usable and tested on their own; importing this package imports nothing.
"""
