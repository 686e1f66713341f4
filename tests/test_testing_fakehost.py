"""The README's plugin-author example: a drop-in extension tested through FakeHost."""
import os
import sys

from zope.interface.verify import verifyObject

from jabberapp.extensions.disco import service_discovery
from jabberapp.interfaces import IExtension
from jabberapp.testing import FakeHost

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "e2e", "dropin"))
from acme_echo import echo  # noqa: E402


def test_fakehost_runs_a_third_party_extension():
    """FakeHost installs the example extension with an option and returns its IQ answer."""
    verifyObject(IExtension, echo)
    host = FakeHost("example.org")
    host.install(service_discovery)
    host.install(echo, prefix="> ")
    host.receive("<iq type='get' id='1' from='a@example.org/r' to='example.org'>"
                 "<echo xmlns='urn:example:echo'>hi</echo></iq>")
    assert host.sent[-1][0].text == "> hi"
    assert host.sent[-1].get("type") == "result"


def test_fakehost_connect_drives_a_stream_with_bytes():
    """FakeHost.connect gives a FakeTransport whose stream negotiates for real: a PLAIN login
    and bind with plain bytes, then stanzas to the session pass the outbound stages."""
    import base64

    from jabberapp.interfaces import ITransport

    host = FakeHost("example.org")
    host.add_account("alice", "pw")
    seen = []
    host.add_outbound_stage(lambda session, stanza: seen.append(stanza.tag) or stanza)
    client = host.connect()
    verifyObject(ITransport, client)
    header = (b"<stream:stream to='example.org' version='1.0' xmlns='jabber:client' "
              b"xmlns:stream='http://etherx.jabber.org/streams'>")
    client.feed(header)
    assert b"<mechanism>PLAIN</mechanism>" in client.take()
    client.feed(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                + base64.b64encode(b"\0alice\0pw") + b"</auth>")
    assert b"<success" in client.take()
    client.feed(header)
    client.feed("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                "<resource>r</resource></bind></iq>")
    assert b"<jid>alice@example.org/r</jid>" in client.take()
    assert host.session("alice@example.org/r") is client.stream.session
    client.feed("<presence/>")
    assert b"<presence" in client.take()
    assert seen == ["{jabber:client}presence"]
    client.drop()
    assert host.session("alice@example.org/r") is None
