"""Reading a store: replay, compact, Store, diff, the where language, tail, salvage."""
