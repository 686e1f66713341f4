"""Storage contract tests, run once per backend."""
