"""Tests of the built-in extensions, each driven through jabberapp.testing.FakeHost."""
