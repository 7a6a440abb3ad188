"""``tracklog ui``: a live, read-only local web page over a store (the ``ui`` extra).

A Starlette app (``app.py``) over the JSON API (``api.py``), Server-Sent Events fed by
the tail (``live.py``), draw-only decimation (``read/downsample.py``) and a page of a few
plain JavaScript modules with plotly.js from the installed ``plotly`` package
(``static/``): no build step, no CDN, works air-gapped. Nothing in the core imports it.
"""

from .app import create_app
from .server import serve

__all__ = ["create_app", "serve"]
