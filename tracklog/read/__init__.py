"""Reading a store: load (the one driver), replay, compact, Store, diff, the where language, tail,
salvage."""

from . import mirror as _mirror  # noqa: F401  (registers the store of URL roots: Store("s3://..."))
