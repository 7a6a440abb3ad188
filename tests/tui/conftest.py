"""The terminal app's tests need Textual (the tui extra)."""

from __future__ import annotations

import pytest

pytest.importorskip("textual", reason="the tui extra is not installed: pip install -e '.[uitest]'")
