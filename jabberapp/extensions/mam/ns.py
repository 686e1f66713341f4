"""The namespaces and element names the mam package speaks (XEP-0313 and its companions)."""
from jabberapp.xml.ns import NS_CLIENT

NS_MAM = "urn:xmpp:mam:2"
NS_MAM_EXTENDED = "urn:xmpp:mam:2#extended"
NS_FULLTEXT = "urn:xmpp:fulltext:0"          # XEP-0431: the full-text search field
NS_SID = "urn:xmpp:sid:0"                    # XEP-0359: unique and stable stanza ids
NS_FORWARD = "urn:xmpp:forward:0"            # XEP-0297
NS_DELAY = "urn:xmpp:delay"                  # XEP-0203
NS_HINTS = "urn:xmpp:hints"                  # XEP-0334

#: The archive's features, on the server's JID and (to their owner) the accounts' bare JIDs
#: (XEP-0313 §6); XEP-0359 asks for its feature from an entity that stamps stanza-ids.
FEATURES = (NS_MAM, NS_MAM_EXTENDED, NS_FULLTEXT, NS_SID)

FULLTEXT_FIELD = f"{{{NS_FULLTEXT}}}fulltext"
# COMPAT: ejabberd and Openfire name their full-text field 'withtext'; accepted, not offered.
WITHTEXT_FIELD = "withtext"

STANZA_ID = f"{{{NS_SID}}}stanza-id"
BODY = f"{{{NS_CLIENT}}}body"
SUBJECT = f"{{{NS_CLIENT}}}subject"
