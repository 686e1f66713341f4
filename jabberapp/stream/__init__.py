"""
XML streams without I/O: the stream machine s2s and components share (xmlstream.py), and the
c2s side -- the negotiation of IStreamFeature steps (negotiation.py, steps.py, saslauth.py),
the Session it produces (session.py), the outbound pipeline (pipeline.py) and the intake of
a bound session's stanzas (intake.py).
"""
