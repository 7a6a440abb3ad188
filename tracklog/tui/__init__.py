"""``tracklog top``: watch runs live from a terminal (the ``tui`` extra, Textual).

``app.py`` is the Textual app (layout in ``top.tcss``); ``braille.py`` draws line charts
in braille characters. Nothing in the core imports it.
"""

from .app import TopApp

__all__ = ["TopApp"]
