"""Reading a store: load (the one driver), replay, compact, Store, diff, the where language, tail,
salvage."""
