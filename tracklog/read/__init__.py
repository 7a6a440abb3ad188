"""Reading a store: replay, compact, Store, the where language, tail, salvage."""
