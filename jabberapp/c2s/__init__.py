"""Client-to-server: the c2s listener (stream.py); the streams themselves are jabberapp.stream."""
