"""jabberapp: a pluggable XMPP server built on Twisted."""

__version__ = "0.1.0"
