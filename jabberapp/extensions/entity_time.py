"""
XEP-0202: Entity Time -- the server's current time in UTC.

<iq type='get' to='example.org'><time xmlns='urn:xmpp:time'/></iq> is answered with
<tzo>+00:00</tzo> and <utc>, in the XEP-0082 DateTime profile to whole seconds. The time
comes from host.clock, so tests control it. (The module is not called time.py so that it
never stands in for the standard library's module of that name.)
"""
from datetime import datetime, timezone

from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.interfaces import IExtension
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_TIME


def utc_timestamp(seconds):
    """POSIX C{seconds} as an XEP-0082 DateTime in UTC: 'YYYY-MM-DDThh:mm:ssZ'."""
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@implementer(IPlugin, IExtension)
class EntityTime:
    """Answers urn:xmpp:time queries addressed to the host JID."""

    name = "time"
    specs = (Spec("XEP-0202", "2.0", "Entity Time"),)
    depends = ("disco",)    # XEP-0202 §2: support is advertised through disco
    options = ()

    def install(self, host):
        """Declare the feature and own time queries to the host JID."""
        host.add_feature(NS_TIME)

        def on_query(iq):
            answer = element(NS_TIME, "time")
            # The server reports UTC: its own zone is nobody's business.
            answer.append(element(NS_TIME, "tzo", text="+00:00"))
            answer.append(element(NS_TIME, "utc", text=utc_timestamp(host.clock.seconds())))
            return answer

        host.iq_handler("get", NS_TIME, "time", on_query, to="host")


entity_time = EntityTime()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
