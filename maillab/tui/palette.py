"""The TUI's text colours, taken from the active Textual theme and made readable on their background.

Panels colour their text by role (`client`, `server`, `note`, `explain`,
`warning`, `good`, `bad`, `dns`, `muted`), never by a fixed colour name:
`palette(widget).style("server")` is the theme's `$text-accent` on that
widget's background, so a dark/light toggle (`t`) or any other theme changes
them too.  A theme colour that would be below the WCAG 2 AA ratio of 4.5:1
on the widget's background (textual-light's `$text-accent` is ~3:1 on
`$surface`) is moved towards black or white until it reaches it.
Rendered text keeps its colours: a panel redraws what it wrote on a theme
change (`Panel.restyle`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style
from textual.color import Color

if TYPE_CHECKING:
    from textual.widget import Widget

AA = 4.5                  # WCAG 2 AA, normal text
TARGET = AA + 0.1         # a margin: a terminal's rounding must not take it under AA
MUTED = "$foreground 75%"  # secondary text in CSS and Content markup: >= 4.5:1 on the built-in themes
TINT = 0.1                # the most a focus or hover tint moves a background towards the foreground

# role -> the theme variable it comes from, and its text style
ROLES: dict[str, tuple[str, str]] = {
    "client": ("text-primary", "bold"),
    "server": ("text-accent", "bold"),
    "note": ("text-muted", "italic"),
    "explain": ("text-secondary", ""),
    "warning": ("text-error", "bold"),
    "good": ("text-success", ""),
    "bad": ("text-error", ""),
    "dns": ("text-secondary", ""),
    "muted": ("text-muted", ""),
    "host": ("text-accent", "bold"),
    "peer": ("text-primary", "bold"),
}


def luminance(color: Color) -> float:
    """WCAG 2 relative luminance of an opaque colour."""
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def contrast(foreground: Color, background: Color) -> float:
    """WCAG 2 contrast ratio of two opaque colours, 1 to 21."""
    a, b = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def readable(color: Color, *backgrounds: Color, target: float = TARGET) -> Color:
    """`color`, or the nearest blend of it towards black or white that reaches `target` on every
    one of `backgrounds` (a widget's own, and its tinted one when focused or hovered)."""
    base = backgrounds[0]
    color = base.blend(color, color.a) if color.a < 1 else color

    def enough(c: Color) -> bool:
        return all(contrast(c, bg) >= target for bg in backgrounds)

    if enough(color):
        return color
    extreme = Color(0, 0, 0) if luminance(base) > 0.18 else Color(255, 255, 255)
    for step in range(1, 21):
        moved = color.blend(extreme, step / 20)
        if enough(moved):
            return moved
    return extreme


def resolve(value: str, background: Color) -> Color:
    """A theme variable's colour on `background`: 'auto 60%' is the contrasting text colour at 60%."""
    if value.startswith("auto"):
        alpha = value.removeprefix("auto").strip().rstrip("%")
        return background.get_contrast_text(float(alpha) / 100 if alpha else 1.0)
    return Color.parse(value)


class Palette:
    """The role styles for one theme on one background."""

    def __init__(self, variables: dict[str, str], background: Color) -> None:
        self._styles: dict[str, Style] = {}
        tinted = background.blend(resolve(variables["foreground"], background), TINT)
        for role, (variable, text_style) in ROLES.items():
            color = readable(resolve(variables[variable], background), background, tinted)
            self._styles[role] = Style.parse(text_style) + Style(color=color.rich_color) if text_style \
                else Style(color=color.rich_color)

    def style(self, role: str) -> Style:
        return self._styles[role]


_CACHE: dict[tuple[str, Color], Palette] = {}


def palette(widget: "Widget") -> Palette:
    """The palette for text drawn in `widget`, on its background, in the app's current theme."""
    key = (widget.app.theme, widget.background_colors[1])
    found = _CACHE.get(key)
    if found is None:
        if len(_CACHE) > 64:
            _CACHE.clear()
        found = _CACHE[key] = Palette(widget.app.get_css_variables(), key[1])
    return found
