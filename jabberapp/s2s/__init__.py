"""Server-to-server federation (RFC 6120 with jabber:server): streams, dialback, routes."""
