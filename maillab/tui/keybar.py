"""The footer: the keys that work here, on one line.

Textual's `Footer` rebuilds one widget per key every time the focus moves,
which on a busy lab made switching panels slow (tens of milliseconds of
mounting and styling per switch).  `KeyBar` is one `Static` that redraws its
text when the screen's bindings change, and only if the text changed.
Bindings with `show=False` stay out, as in `Footer`; the command palette key
is shown last.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Static


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $footer-background; color: $footer-description-foreground; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", markup=False, **kwargs)
        self._shown: str = ""

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self._bindings_changed, self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[Any]) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        keys: list[tuple[str, str]] = []
        seen: set[str] = set()
        active = screen.active_bindings
        for _node, binding, enabled, _tooltip in active.values():
            if not binding.show or not enabled or binding.action in seen:
                continue
            seen.add(binding.action)
            keys.append((self.app.get_key_display(binding), binding.description))
        palette_binding = active.get(self.app.COMMAND_PALETTE_BINDING) if self.app.ENABLE_COMMAND_PALETTE else None
        palette = self.app.get_key_display(palette_binding.binding) if palette_binding else ""
        plain = " ".join(f"{k} {d}" for k, d in keys) + (f" | {palette} palette" if palette else "")
        if plain == self._shown:
            return
        self._shown = plain
        text = Text(no_wrap=True, overflow="ellipsis")
        for key, description in keys:
            text.append(f" {key} ", style="bold")
            text.append(f"{description} ")
        if palette:
            text.append(f" {palette} ", style="bold")
            text.append("palette")
        self.update(text)
