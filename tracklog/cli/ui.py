"""``tracklog ui``: serve the live, read-only web page over the store (the ``ui`` extra)."""

from __future__ import annotations

import argparse

from .exits import EXIT_OK, CliError, existing_store

HELP = "serve a live, read-only web page of the runs (needs the ui extra)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=int, default=5151, help="port (default: 5151; 0 picks a free one)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests naming this host (a proxy's or tunnel's name)",
    )


def run(args: argparse.Namespace) -> int:
    store = existing_store(args.root)
    try:
        from ..ui import serve
    except ImportError as exc:
        raise CliError(
            f"tracklog ui needs the ui extra ({exc.name} is missing): pip install 'tracklog[ui]'"
        ) from None
    serve(store, args.host, args.port, open_browser=args.open, allow_hosts=args.allow_host)
    return EXIT_OK
