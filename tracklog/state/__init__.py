"""Run state: the public result types, the fold that makes them from events, and the files
that persist folded state (snapshots, the store index)."""
