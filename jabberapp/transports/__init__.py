"""
Transports under c2s streams: bytes in, bytes out, nothing else (ITransport).

tcp.py carries TCP and direct TLS (XEP-0368); WebSocket (RFC 7395) and BOSH (XEP-0206) join it
as thin adapters under the same sans-I/O negotiation (jabberapp.stream.negotiation).
"""
