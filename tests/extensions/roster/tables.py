"""
RFC 6121 Appendix A.2 and A.3, row by row, as data for the tests.

Each row: (existing state, forwarded?, new state or None for "no state change", pushed?).
"Forwarded" is the tables' "route?" column for outbound stanzas (A.2) and "deliver?" for
inbound ones (A.3). "Pushed" is whether the user's interested resources get a roster push:
the roster item shows subscription, ask and approved, not a pending inbound request.

Where A.2.2 says "no state change" for an outbound 'subscribed' without a pending request
(None, None + Pending Out, To), this server supports pre-approval (§3.4): the state gains
the pre-approval, which shows as approved='true', and nothing is routed.
"""
PO, PI, POI = " + Pending Out", " + Pending In", " + Pending Out+In"

# A.2.1: outbound "subscribe"
OUTBOUND_SUBSCRIBE = [
    ("None", True, "None" + PO, True),
    ("None" + PO, True, None, False),
    ("None" + PI, True, "None" + POI, True),
    ("None" + POI, True, None, False),
    ("To", True, None, False),
    ("To" + PI, True, None, False),
    ("From", True, "From" + PO, True),
    ("From" + PO, True, None, False),
    ("Both", True, None, False),
]

# A.2.2: outbound "subscribed" (pre-approval where the RFC has no change: see above)
OUTBOUND_SUBSCRIBED = [
    ("None", False, "None (pre-approved)", True),
    ("None" + PO, False, "None + Pending Out (pre-approved)", True),
    ("None" + PI, True, "From", True),
    ("None" + POI, True, "From" + PO, True),
    ("To", False, "To (pre-approved)", True),
    ("To" + PI, True, "Both", True),
    ("From", False, None, False),
    ("From" + PO, False, None, False),
    ("Both", False, None, False),
]

# A.2.3: outbound "unsubscribe"
OUTBOUND_UNSUBSCRIBE = [
    ("None", True, None, False),
    ("None" + PO, True, "None", True),
    ("None" + PI, True, None, False),
    ("None" + POI, True, "None" + PI, True),
    ("To", True, "None", True),
    ("To" + PI, True, "None" + PI, True),
    ("From", True, None, False),
    ("From" + PO, True, "From", True),
    ("Both", True, "From", True),
]

# A.2.4: outbound "unsubscribed"
OUTBOUND_UNSUBSCRIBED = [
    ("None", False, None, False),
    ("None" + PO, False, None, False),
    ("None" + PI, True, "None", False),
    ("None" + POI, True, "None" + PO, False),
    ("To", False, None, False),
    ("To" + PI, True, "To", False),
    ("From", True, "None", True),
    ("From" + PO, True, "None" + PO, True),
    ("Both", True, "To", True),
]

# A.3.1: inbound "subscribe"
INBOUND_SUBSCRIBE = [
    ("None", True, "None" + PI, False),
    ("None" + PO, True, "None" + POI, False),
    ("None" + PI, False, None, False),
    ("None" + POI, False, None, False),
    ("To", True, "To" + PI, False),
    ("To" + PI, False, None, False),
    ("From", False, None, False),      # auto-reply "subscribed"
    ("From" + PO, False, None, False),  # auto-reply "subscribed"
    ("Both", False, None, False),      # auto-reply "subscribed"
]

# A.3.2: inbound "subscribed"
INBOUND_SUBSCRIBED = [
    ("None", False, None, False),
    ("None" + PO, True, "To", True),
    ("None" + PI, False, None, False),
    ("None" + POI, True, "To" + PI, True),
    ("To", False, None, False),
    ("To" + PI, False, None, False),
    ("From", False, None, False),
    ("From" + PO, True, "Both", True),
    ("Both", False, None, False),
]

# A.3.3: inbound "unsubscribe"
INBOUND_UNSUBSCRIBE = [
    ("None", False, None, False),
    ("None" + PO, False, None, False),
    ("None" + PI, True, "None", False),
    ("None" + POI, True, "None" + PO, False),
    ("To", False, None, False),
    ("To" + PI, True, "To", False),
    ("From", True, "None", True),
    ("From" + PO, True, "None" + PO, True),
    ("Both", True, "To", True),
]

# A.3.4: inbound "unsubscribed"
INBOUND_UNSUBSCRIBED = [
    ("None", False, None, False),
    ("None" + PO, True, "None", True),
    ("None" + PI, False, None, False),
    ("None" + POI, True, "None" + PI, True),
    ("To", True, "None", True),
    ("To" + PI, True, "None" + PI, True),
    ("From", False, None, False),
    ("From" + PO, True, "From", True),
    ("Both", True, "From", True),
]

OUTBOUND = {"subscribe": OUTBOUND_SUBSCRIBE, "subscribed": OUTBOUND_SUBSCRIBED,
            "unsubscribe": OUTBOUND_UNSUBSCRIBE, "unsubscribed": OUTBOUND_UNSUBSCRIBED}
INBOUND = {"subscribe": INBOUND_SUBSCRIBE, "subscribed": INBOUND_SUBSCRIBED,
           "unsubscribe": INBOUND_UNSUBSCRIBE, "unsubscribed": INBOUND_UNSUBSCRIBED}

# §3.4 pre-approval: (existing state, direction, stanza, forwarded?, new state, pushed?)
PRE_APPROVAL = [
    ("None (pre-approved)", "inbound", "subscribe", False, "From", True),
    ("None + Pending Out (pre-approved)", "inbound", "subscribe", False, "From" + PO, True),
    ("To (pre-approved)", "inbound", "subscribe", False, "Both", True),
    ("None (pre-approved)", "outbound", "unsubscribed", False, "None", True),
    ("To (pre-approved)", "outbound", "unsubscribed", False, "To", True),
    ("None (pre-approved)", "outbound", "subscribed", False, None, False),
    ("None (pre-approved)", "outbound", "subscribe", True, "None + Pending Out (pre-approved)",
     True),
]


def rows(tables):
    """(stanza type, existing, forwarded, new, pushed) for every row of C{tables}."""
    return [(kind, *row) for kind, table in tables.items() for row in table]
