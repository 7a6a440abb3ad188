"""Reading a store: load (the one driver), replay, compact, Store, the where language, tail, salvage."""
