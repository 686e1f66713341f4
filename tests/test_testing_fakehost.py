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
