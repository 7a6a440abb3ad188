"""Where the store's files are and who may write them: names, safe opening, locks, artifact blobs.

The lowest layer above errors: it knows paths and file systems, not the bytes inside.
"""
