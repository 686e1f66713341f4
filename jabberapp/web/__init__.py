"""
The HTTP side of the server: one twisted.web service per process (``service.HTTPService``)
that WebSocket, BOSH, XEP-0156 host-meta and later HTTP features are mounted on.
"""
