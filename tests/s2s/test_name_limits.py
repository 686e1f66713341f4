"""s2s streams carry many users' traffic for days: they may use more distinct names than a
client stream before the parser refuses them (xml/namedict.py)."""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.s2s.inbound import InboundStream
from jabberapp.xml.namedict import MAX_STREAM_NAMES, TRUNK_STREAM_NAMES
from tests.s2s.support import Reader, TLSStringTransport, header, make_manager, stream_error


def many_names(count):
    """One element using C{count} distinct attribute names."""
    attributes = " ".join(f"n{index:06d}='v'" for index in range(count))
    return f"<thing xmlns='urn:example:names' {attributes}/>".encode()


class NameLimitTests(SynchronousTestCase):
    def test_s2s_allows_more_names_than_a_client_stream(self):
        """An s2s stream past the client streams' limit of distinct names is not refused for
        it (it is refused for what it sent, an unknown element before authentication)."""
        self.assertGreater(TRUNK_STREAM_NAMES, MAX_STREAM_NAMES + 5000)
        manager, _, _ = make_manager(require_encryption=False)
        stream = InboundStream(manager)
        transport = TLSStringTransport()
        stream.makeConnection(transport)
        reader = Reader(transport)
        stream.dataReceived(header())
        reader.read()
        stream.dataReceived(many_names(MAX_STREAM_NAMES + 5000))
        self.assertNotIn(stream_error(reader.read()), (None, "policy-violation"))
