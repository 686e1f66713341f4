"""
What every SQL backend shares, whatever its driver: the database thread (thread.py).

The SQL text, the schema and its migrations belong to each backend (jabberapp.storage.sqlite),
because dialects differ in exactly those places (parameter style, upserts, locking BEGIN).
"""
