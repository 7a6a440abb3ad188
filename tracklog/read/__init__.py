"""Reading a store: load (snapshot + log tail), replay, compact, Store, filters, tail, checks."""
