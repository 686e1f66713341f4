"""
XML namespace constants used across the server (one place for each).

They live outside the jabberapp.xml package so that the modules below it (``errors``) can use
them without loading the parser: import them as ``from jabberapp.xml.ns import NS_...`` (or
from ``jabberapp.xml``) anywhere else.  This module imports nothing.
"""

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_SERVER = "jabber:server"
NS_COMPONENT = "jabber:component:accept"
NS_XML = "http://www.w3.org/XML/1998/namespace"

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"
NS_DIALBACK = "jabber:server:dialback"             # XEP-0220, the db: prefix on s2s streams
NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback"  # XEP-0220 §2.4 stream feature
NS_BIDI = "urn:xmpp:bidi"                           # XEP-0288
NS_BIDI_FEATURE = "urn:xmpp:features:bidi"

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_VERSION = "jabber:iq:version"
NS_PING = "urn:xmpp:ping"
NS_TIME = "urn:xmpp:time"
