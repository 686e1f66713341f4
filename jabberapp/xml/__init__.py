"""Sans-I/O XML for XMPP streams: namespaces, element builder, parser, serializer."""
