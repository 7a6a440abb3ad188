"""A widget that shows lines drawn ahead (the charts) through Textual's line API.

A ``Static`` given a new 200x50 chart four times a second parses it into Textual's content,
wraps every line and re-renders it: more work than drawing the chart. Here each line is a
few styled runs turned into one ``Strip``; a change repaints this widget alone, with no
markup, wrapping or layout pass on the way, and an unchanged chart is not repainted at all.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

Line = list[tuple[str, str]]  # runs of (text, rich style string) making up one line


class Lines(Widget):
    """Lines of styled runs, one per row, cropped or padded to the widget's width."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[Line] = []
        self._strips: list[Strip] = []

    def show(self, lines: list[Line]) -> None:
        if lines == self.lines:
            return
        self.lines = lines
        self._strips = [
            Strip([Segment(text, Style.parse(style) if style else None) for text, style in line if text])
            for line in lines
        ]
        self.refresh()

    @property
    def plain(self) -> str:
        """What is shown, without styles (for tests and for copying)."""
        return "\n".join("".join(text for text, _ in line) for line in self.lines)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y < len(self._strips):
            return self._strips[y].adjust_cell_length(width)
        return Strip.blank(width)
