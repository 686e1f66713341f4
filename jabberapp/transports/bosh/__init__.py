"""
BOSH, XEP-0124 and XEP-0206: c2s streams over HTTP long polling.

body.py reads and writes the <body/> wrapper; session.py is one session (rid window, held
requests, timers, acks, pause, terminate) and the transport of its stream, requests.py its
limits and request records; service.py finds or creates the session of each request;
resource.py is the /http-bind twisted.web resource.
"""
