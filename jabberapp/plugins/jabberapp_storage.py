"""
The built-in storage backends, exposed to getPlugins(IStorageBackend, jabberapp.plugins):
``sqlite`` (the embedded default) and ``memory`` (volatile, for tests).
"""
from jabberapp.storage.memory import memory_backend
from jabberapp.storage.sqlite import sqlite_backend

__all__ = ["memory_backend", "sqlite_backend"]
